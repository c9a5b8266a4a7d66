import json

import pandas as pd
import pytest

from pipeline.config import PipelineConfig, ValidationConfig, load_config
from pipeline.data.readers import normalise_text
from pipeline.data.store import DataStore
from pipeline.validation.contract import load_suite_dict, validate_frame, validate_snapshot
from pipeline.validation.results import ContractResult
from pipeline.validation.steps import allowed_labels_for
from pipeline.workspace import Workspace


def frame(rows):
    f = pd.DataFrame(rows, columns=["text", "label"])
    f["source"] = "batch.csv"
    f["row"] = range(1, len(f) + 1)
    return f


GOOD = [(f"the order number {i} has not arrived", "shipping") for i in range(30)] + [
    (f"I was billed twice for invoice {i}", "billing") for i in range(30)
]


def failed_rules(result):
    return {f["rule"] for f in result.failures}


@pytest.fixture(scope="module")
def tokenizer():
    from pipeline.training.modeling import load_tokenizer

    return load_tokenizer("packaged:all-minilm-l6-v2")


def test_good_batch_passes(tokenizer):
    result = validate_frame(frame(GOOD), ValidationConfig(), tokenizer=tokenizer, max_length=64)
    assert result.success, result.failures
    assert not result.skipped or {s["rule"] for s in result.skipped} == {"label_in_allowed_set", "label_drift"}


@pytest.mark.parametrize(
    "mutate, rule",
    [
        (lambda rows: rows.__setitem__(0, (None, "shipping")), "text_not_null"),
        (lambda rows: rows.__setitem__(0, ("   ", "shipping")), "text_not_blank"),
        (lambda rows: rows.__setitem__(0, ("x" * 200, "shipping")), "text_max_length"),
        (lambda rows: rows.__setitem__(0, ("fine text", None)), "label_not_null"),
        (lambda rows: rows.__setitem__(0, ("fine text", "refunds")), "label_in_allowed_set"),
        (lambda rows: rows.extend([("bad\x07bell", "billing")] * 3), "control_characters"),
        (lambda rows: rows.extend([GOOD[0]] * 40), "duplicate_rows"),
        (lambda rows: rows.extend([(GOOD[0][0].upper(), "billing")]), "conflicting_labels"),
    ],
)
def test_each_rule_has_a_failing_case(mutate, rule, tokenizer):
    rows = list(GOOD)
    mutate(rows)
    config = ValidationConfig(max_text_length=100, max_duplicate_share=0.2)
    result = validate_frame(
        frame(rows),
        config,
        allowed_labels=["shipping", "billing"],
        tokenizer=tokenizer,
        max_length=64,
        max_conflict_share=0.01,
    )
    assert not result.success
    assert rule in failed_rules(result)
    failure = next(f for f in result.failures if f["rule"] == rule)
    assert failure["examples"] and failure["examples"][0]["source"] == "batch.csv"
    assert rule in result.summary("batch.csv") and "row " in result.summary("batch.csv")


def test_missing_columns_and_wrong_types_fail_without_crashing(tokenizer):
    no_text = frame(GOOD).drop(columns=["text"])
    result = validate_frame(no_text, ValidationConfig(), tokenizer=tokenizer, max_length=64)
    assert "text_column_present" in failed_rules(result)
    assert "missing" in next(f for f in result.failures if f["rule"] == "text_column_present")["observed"]
    assert {"text_not_blank", "duplicate_rows", "truncated_rows"} <= {s["rule"] for s in result.skipped}

    typed = frame(GOOD).astype({"text": object, "label": object})
    typed.loc[3, "label"] = 7
    typed.loc[4, "text"] = 12.5
    result = validate_frame(typed, ValidationConfig())
    assert {"label_is_string", "text_is_string"} <= failed_rules(result)


def test_blank_rows_fail_once_not_as_empty_tokens_too(tokenizer):
    rows = list(GOOD)
    rows[0] = ("  ", "shipping")
    result = validate_frame(frame(rows), ValidationConfig(), tokenizer=tokenizer, max_length=64)
    assert failed_rules(result) == {"text_not_blank"}


def test_leakage_and_truncation(tokenizer):
    rows = list(GOOD) + [("word " * 100, "billing")] * 4
    test_texts = {normalise_text(text) for text, _ in GOOD[:6]}
    result = validate_frame(frame(rows), ValidationConfig(), tokenizer=tokenizer, max_length=16, test_texts=test_texts)
    assert {"test_split_leakage", "truncated_rows"} <= failed_rules(result)
    leak = next(f for f in result.failures if f["rule"] == "test_split_leakage")
    assert leak["observed"].startswith("6 of 64 rows") and leak["examples"][0]["row"] == 1


def test_drift_is_a_warning_by_default_and_an_error_when_configured(tokenizer):
    reference = frame(GOOD)
    batch = frame([(f"billed {i} times", "billing") for i in range(30)])
    result = validate_frame(
        batch, ValidationConfig(max_label_drift_kl=0.1), tokenizer=tokenizer, max_length=64, reference=reference
    )
    assert result.success
    assert "label_drift" in {w["rule"] for w in result.warnings}
    strict = ValidationConfig(max_label_drift_kl=0.1, severity={"label_drift": "error"})
    assert "label_drift" in failed_rules(validate_frame(batch, strict, reference=reference))


def test_severity_overrides_turn_rules_into_warnings_or_off():
    rows = list(GOOD)
    rows[0] = ("   ", "shipping")
    warned = validate_frame(frame(rows), ValidationConfig(severity={"text_not_blank": "warning"}))
    assert warned.success and "text_not_blank" in {w["rule"] for w in warned.warnings}
    off = validate_frame(frame(rows), ValidationConfig(severity={"text_not_blank": "off"}))
    assert off.success and "text_not_blank" in {s["rule"] for s in off.skipped}
    assert "text_not_blank" not in {c["rule"] for c in off.checks}


def test_conflicts_with_the_snapshot_count(tokenizer):
    reference = frame(GOOD)
    batch = frame([(f"the ORDER number {i} has not arrived", "billing") for i in range(5)] + GOOD[30:])
    result = validate_frame(batch, ValidationConfig(), reference=reference)
    conflict = next(f for f in result.failures if f["rule"] == "conflicting_labels")
    assert conflict["observed"].startswith("5 of 35 rows")


def test_token_checks_sample_large_batches_but_always_check_suspect_rows(tokenizer):
    rows = [(f"ticket {i} about my invoice", "billing" if i % 2 else "shipping") for i in range(3000)]
    rows[2999] = ("\u200b\u200b", "billing")
    config = ValidationConfig(token_check_rows=500)
    result = validate_frame(frame(rows), config, tokenizer=tokenizer, max_length=64)
    assert failed_rules(result) == {"empty_after_tokenization"}
    assert result.failures[0]["examples"][0]["row"] == 3000
    assert any("sample of 500 of 3,000 rows" in note for note in result.notes)
    truncation = next(c for c in result.checks if c["rule"] == "truncated_rows")
    assert truncation["observed"] == "0 of 500 rows (0.00%)"


def write_suite(path, expectations):
    path.write_text(json.dumps({"name": path.stem, "meta": {}, "expectations": expectations}), encoding="utf-8")
    return str(path)


def test_a_custom_suite_file_adds_and_replaces_expectations(tmp_path):
    custom = write_suite(
        tmp_path / "team_rules.json",
        [
            {
                "type": "expect_column_values_to_not_match_regex",
                "kwargs": {"column": "text", "regex": "https?://"},
                "meta": {"rule": "no_urls", "description": "texts hold no links"},
                "severity": "critical",
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {
                    "column": "is_duplicate",
                    "value_set": [False],
                    "mostly": {"$PARAMETER": "duplicate_mostly"},
                },
                "meta": {"rule": "duplicate_rows"},
                "severity": "warning",
            },
        ],
    )
    rows = list(GOOD) + [("see https://example.org/promo", "billing"), GOOD[1]]
    config = ValidationConfig(extra_suites=[custom], max_duplicate_share=0.0)
    result = validate_frame(frame(rows), config)
    assert failed_rules(result) == {"no_urls"}
    assert result.failures[0]["examples"][0]["row"] == 61
    assert "duplicate_rows" in {w["rule"] for w in result.warnings}, "the team's duplicate rule replaced the built-in"
    assert [c["rule"] for c in result.checks].count("duplicate_rows") == 1


def test_a_custom_expectation_on_an_unknown_column_fails_instead_of_being_skipped(tmp_path):
    custom = write_suite(
        tmp_path / "typo.json",
        [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "langauge"},
                "meta": {"rule": "has_language"},
            }
        ],
    )
    result = validate_frame(frame(GOOD), ValidationConfig(extra_suites=[custom]))
    assert failed_rules(result) == {"has_language"}


def test_an_unknown_suite_parameter_is_an_error_naming_the_rule(tmp_path):
    custom = write_suite(
        tmp_path / "bad_param.json",
        [
            {
                "type": "expect_column_value_lengths_to_be_between",
                "kwargs": {"column": "text", "max_value": {"$PARAMETER": "max_text_lenght"}},
                "meta": {"rule": "short_texts"},
            }
        ],
    )
    with pytest.raises(ValueError, match="short_texts: unknown suite parameter 'max_text_lenght'"):
        validate_frame(frame(GOOD), ValidationConfig(extra_suites=[custom]))


def test_validation_suite_may_be_a_path(tmp_path):
    suite = load_suite_dict("labeled_text")
    suite["expectations"] = [e for e in suite["expectations"] if e["meta"]["rule"] == "text_not_null"]
    path = tmp_path / "minimal.json"
    path.write_text(json.dumps(suite), encoding="utf-8")
    result = validate_frame(frame([("  ", "x")] * 3), ValidationConfig(suite=str(path)))
    assert result.success and [c["rule"] for c in result.checks] == ["text_not_null"]
    with pytest.raises(FileNotFoundError, match="no expectation suite"):
        validate_frame(frame(GOOD), ValidationConfig(suite="nope"))


def test_snapshot_suite_class_balance():
    rows = GOOD + [("a lone account question", "account")]
    result = validate_snapshot(frame(rows), ValidationConfig(min_examples_per_class=2))
    assert "min_examples_per_class" in failed_rules(result)
    failure = next(f for f in result.failures if f["rule"] == "min_examples_per_class")
    assert failure["examples"] == [{"label": "account", "count": 1, "share": pytest.approx(1 / 61, abs=1e-6)}]
    result = validate_snapshot(frame(GOOD), ValidationConfig(max_class_share=0.4))
    assert "max_class_share" in failed_rules(result)


def test_markdown_report_shows_every_check_with_observed_value(tokenizer):
    rows = list(GOOD)
    rows[0] = ("  ", "shipping")
    result = validate_frame(frame(rows), ValidationConfig(), tokenizer=tokenizer, max_length=64)
    md = result.to_markdown("Data contract: batch.csv")
    assert (
        "FAILED" in md
        and "| text_not_blank | is_blank | error | **FAIL** | 1 of 60 rows (1.67%) | row 1 of batch.csv" in md
    )
    assert all(f"| {c['rule']} |" in md for c in result.checks)
    assert (
        ContractResult.from_dict(json.loads(json.dumps(result.to_dict()))).to_markdown("Data contract: batch.csv") == md
    )


def snapshot_with(tmp_path, rows):
    path = tmp_path / "first.csv"
    frame(rows)[["text", "label"]].to_csv(path, index=False)
    store = DataStore(Workspace.resolve(tmp_path / "ws"), PipelineConfig().data)
    store.ingest([str(path)])
    return store.head()


def test_allowed_labels_come_from_config_else_the_current_snapshot(tmp_path):
    head = snapshot_with(tmp_path, GOOD)
    assert allowed_labels_for(load_config(), None) is None, "the first batch sets the labels"
    assert allowed_labels_for(load_config(), head) == ["billing", "shipping"]
    assert allowed_labels_for(load_config(overrides=["validation.allow_new_labels=true"]), head) is None
    configured = load_config(overrides=["validation.allowed_labels=[billing, shipping, account]"])
    assert allowed_labels_for(configured, head) == ["billing", "shipping", "account"]
    unseen = frame(GOOD[:10] + [("please close my account", "account")] * 2)
    learned = validate_frame(unseen, ValidationConfig(), allowed_labels=allowed_labels_for(load_config(), head))
    assert failed_rules(learned) == {"label_in_allowed_set"}
    assert learned.failures[0]["examples"][0]["label"] == "account"


def test_committed_suite_files_match_the_builder(tmp_path):
    from pipeline.expectations.build_suites import write_suites
    from pipeline.validation.contract import suites_dir

    for path in write_suites(tmp_path):
        committed = json.loads((suites_dir() / path.name).read_text(encoding="utf-8"))
        assert json.loads(path.read_text(encoding="utf-8")) == committed, (
            f"run python -m expectations.build_suites ({path.name})"
        )
