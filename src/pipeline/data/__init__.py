"""Ingesting labeled files: sources, readers, the ledger, snapshots, quarantine, splits and the demo data."""
