"""The ``pipeline`` command line."""
