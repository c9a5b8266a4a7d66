"""No false alarms on real corpora (../shared/data, skipped when absent): SST-2 (67k short phrases with
~0.5% exact duplicates and a few conflicting labels) and BANKING77 (77 intents, quoted multi-line fields)."""

import pytest

from pipeline.config import load_config
from pipeline.data.store import DataStore
from pipeline.validation import steps as validation_steps
from pipeline.workspace import Workspace

pytestmark = pytest.mark.realdata


def validate(path, root):
    config = load_config(overrides=[f"workspace={root}"])
    return validation_steps.validate_file(config, Workspace.resolve(root), str(path))


@pytest.mark.parametrize(
    "name", ["sst2/train.tsv", "sst2/validation.tsv", "banking77/train.tsv", "banking77/dev.tsv", "banking77/test.tsv"]
)
def test_real_files_pass_as_a_first_batch(name, shared_data, tmp_path):
    result = validate(shared_data / name, tmp_path / "ws")
    assert result.success, result.summary(name)
    assert not result.warnings


@pytest.mark.parametrize(
    "snapshot, batch", [("sst2/train.tsv", "sst2/validation.tsv"), ("banking77/train.tsv", "banking77/test.tsv")]
)
def test_real_files_pass_against_a_snapshot_of_their_training_set(snapshot, batch, shared_data, tmp_path):
    root = tmp_path / "ws"
    config = load_config(overrides=[f"workspace={root}"])
    DataStore(Workspace.resolve(root), config.data).ingest([str(shared_data / snapshot)])
    result = validate(shared_data / batch, root)
    assert result.success, result.summary(batch)
    checked = {c["rule"] for c in result.checks}
    assert {"label_in_allowed_set", "label_drift", "test_split_leakage", "conflicting_labels"} <= checked
