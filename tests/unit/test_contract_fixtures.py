"""One failing fixture file per contract check, run the way `pipeline validate` and ingestion run them
(validation_steps.validate_file against a workspace whose snapshot is tests/fixtures/contract/reference.csv)."""

import pytest

from pipeline.config import load_config
from pipeline.data.store import DataStore
from pipeline.validation import steps as validation_steps
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES

CONTRACT = FIXTURES / "contract"

# fixture -> (failed rules expected, needs the reference snapshot, configuration overrides)
CASES = {
    "text_not_null": ({"text_not_null"}, False, []),
    "text_not_blank": ({"text_not_blank"}, False, []),
    "text_min_length": ({"text_min_length"}, False, ["validation.min_text_length=5"]),
    "text_max_length": ({"text_max_length"}, False, []),
    "label_not_null": ({"label_not_null"}, False, []),
    "label_not_missing_marker": ({"label_not_missing_marker"}, False, []),
    "label_in_allowed_set": ({"label_in_allowed_set"}, True, []),
    "duplicate_rows": ({"duplicate_rows"}, False, []),
    "conflicting_labels": ({"conflicting_labels"}, False, []),
    "conflicting_labels_snapshot": ({"conflicting_labels"}, True, []),
    "control_characters": ({"control_characters"}, False, []),
    "test_split_leakage": ({"test_split_leakage"}, True, []),
    "truncated_rows": ({"truncated_rows"}, False, []),
    "empty_after_tokenization": ({"empty_after_tokenization"}, False, []),
    "unknown_tokens": ({"unknown_tokens"}, False, []),
    "label_drift": ({"label_drift"}, True, ["validation.severity={label_drift: error}"]),
    "min_examples_per_class": ({"min_examples_per_class"}, False, []),
    "max_class_share": ({"max_class_share"}, False, []),
    "at_least_two_classes": ({"at_least_two_classes", "max_class_share"}, False, []),
}


@pytest.fixture(scope="module")
def reference_workspace(tmp_path_factory):
    """A workspace whose current snapshot holds reference.csv (ingested without a contract)."""
    root = tmp_path_factory.mktemp("reference-ws")
    config = load_config(overrides=[f"workspace={root}"])
    DataStore(Workspace.resolve(root), config.data).ingest([str(CONTRACT / "reference.csv")])
    return root


def run_fixture(name, workspace_root, overrides=()):
    config = load_config(overrides=[f"workspace={workspace_root}", *overrides])
    return validation_steps.validate_file(config, Workspace.resolve(workspace_root), str(CONTRACT / f"{name}.csv"))


@pytest.mark.parametrize("with_reference", [False, True], ids=["first-batch", "against-snapshot"])
def test_good_fixture_passes(with_reference, reference_workspace, tmp_path):
    result = run_fixture("good", reference_workspace if with_reference else tmp_path / "empty")
    assert result.success, result.failures
    assert not result.warnings, result.warnings
    assert not (tmp_path / "empty").exists(), "validating must not create a workspace"


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_check_has_a_failing_fixture(name, reference_workspace, tmp_path):
    expected, needs_reference, overrides = CASES[name]
    result = run_fixture(name, reference_workspace if needs_reference else tmp_path / "empty", overrides)
    assert not result.success
    assert {f["rule"] for f in result.failures} == expected
    failure = next(f for f in result.failures if f["rule"] in expected)
    assert failure["observed"] is not None and failure["severity"] == "error"
    if failure["rule"] == "label_drift":  # judged on the whole distribution, which the observed value shows
        assert "batch {" in failure["observed"] and "snapshot {" in failure["observed"]
    else:
        assert failure["examples"], f"{name}: a failure must show example rows"
    summary = result.summary(name)
    assert failure["rule"] in summary and str(failure["observed"]) in summary


def test_every_rule_of_the_default_suites_has_a_fixture():
    from pipeline.validation.contract import load_suite_dict

    rules = {
        e["meta"]["rule"]
        for name in ("labeled_text", "labeled_text_snapshot")
        for e in load_suite_dict(name)["expectations"]
    }
    covered = set().union(*(rules for rules, _, _ in CASES.values()))
    # Column presence and value types cannot come from a file (the reader refuses a missing column and
    # reads every value as a string): tests/unit/test_validation.py covers them on data frames.
    assert rules - covered == {"text_column_present", "label_column_present", "text_is_string", "label_is_string"}


def test_drift_is_a_warning_by_default(reference_workspace):
    result = run_fixture("label_drift", reference_workspace)
    assert result.success
    drift = next(w for w in result.warnings if w["rule"] == "label_drift")
    assert drift["severity"] == "warning" and "KL" in drift["observed"]


def test_validating_an_ingested_file_says_ingestion_would_skip_it(reference_workspace):
    result = run_fixture("reference", reference_workspace)
    assert any("already in the ledger (accepted)" in note for note in result.notes)
