"""The data contract (Great Expectations): suites, derived columns and offline Data Docs."""
