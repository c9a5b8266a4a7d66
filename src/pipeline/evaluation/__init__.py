"""Metrics on the frozen test split and comparison with the champion."""
