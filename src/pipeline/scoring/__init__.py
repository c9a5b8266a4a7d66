"""Scoring: batch inference with a registered model, the inbox ledger, drift on incoming texts."""
