"""Fixtures shared by the unit tests."""

from tests.unit.registry_db import migrated_registry_db  # noqa: F401  (a session fixture, registered here)
