import pandas as pd
import pytest

from pipeline.config import ValidationConfig
from pipeline.ingestion import normalise_text
from pipeline.validation import class_balance_frame, load_suite_dict, run_contract, suite_parameters, validate_frame


def frame(rows):
    f = pd.DataFrame(rows, columns=["text", "label"])
    f["source"] = "batch.csv"
    f["row"] = range(1, len(f) + 1)
    return f


GOOD = [(f"the order number {i} has not arrived", "shipping") for i in range(30)] + \
       [(f"I was billed twice for invoice {i}", "billing") for i in range(30)]


def failed_rules(result):
    return {f["rule"] for f in result.failures}


@pytest.fixture(scope="module")
def tokenizer():
    from pipeline.modeling import load_tokenizer

    return load_tokenizer("packaged:all-minilm-l6-v2")


def test_good_batch_passes(tokenizer):
    result = validate_frame(frame(GOOD), ValidationConfig(), tokenizer=tokenizer, max_length=64)
    assert result.success, result.failures


@pytest.mark.parametrize("mutate, rule", [
    (lambda rows: rows.__setitem__(0, (None, "shipping")), "text_not_null"),
    (lambda rows: rows.__setitem__(0, ("   ", "shipping")), "text_not_blank"),
    (lambda rows: rows.__setitem__(0, ("x" * 200, "shipping")), "text_max_length"),
    (lambda rows: rows.__setitem__(0, ("fine text", None)), "label_not_null"),
    (lambda rows: rows.__setitem__(0, ("fine text", "refunds")), "label_in_allowed_set"),
    (lambda rows: rows.extend([("bad\x07bell", "billing")] * 3), "control_characters"),
    (lambda rows: rows.extend([GOOD[0]] * 40), "duplicate_rows"),
])
def test_each_rule_has_a_failing_case(mutate, rule, tokenizer):
    rows = list(GOOD)
    mutate(rows)
    config = ValidationConfig(max_text_length=100, max_duplicate_share=0.2)
    result = validate_frame(frame(rows), config, allowed_labels=["shipping", "billing"], tokenizer=tokenizer, max_length=64)
    assert not result.success
    assert rule in failed_rules(result)
    failure = next(f for f in result.failures if f["rule"] == rule)
    assert failure["examples"] and failure["examples"][0]["source"] == "batch.csv"
    assert rule in result.summary("batch.csv")


def test_leakage_and_truncation(tokenizer):
    rows = list(GOOD)
    test_texts = {normalise_text(GOOD[0][0])}
    rows.append(("word " * 100, "billing"))
    result = validate_frame(frame(rows), ValidationConfig(max_truncated_share=0.0), tokenizer=tokenizer, max_length=16,
                            test_texts=test_texts)
    assert {"test_split_leakage", "truncated_rows"} <= failed_rules(result)


def test_drift_is_a_warning_by_default(tokenizer):
    reference = frame(GOOD)
    batch = frame([(f"billed {i} times", "billing") for i in range(30)])
    result = validate_frame(batch, ValidationConfig(max_label_drift_kl=0.1), tokenizer=tokenizer, max_length=64,
                            reference=reference)
    assert result.success
    assert "label_drift" in {w["rule"] for w in result.warnings}


def test_snapshot_suite_class_balance():
    rows = GOOD + [("a lone account question", "account")]
    params = suite_parameters(ValidationConfig(min_examples_per_class=2), None, None, None)
    result = run_contract(class_balance_frame(frame(rows)), load_suite_dict("labeled_text_snapshot"), params)
    assert "min_examples_per_class" in failed_rules(result)
    params = suite_parameters(ValidationConfig(max_class_share=0.4), None, None, None)
    result = run_contract(class_balance_frame(frame(GOOD)), load_suite_dict("labeled_text_snapshot"), params)
    assert "max_class_share" in failed_rules(result)


def test_markdown_report_names_rule_and_observed(tokenizer):
    rows = list(GOOD)
    rows[0] = ("  ", "shipping")
    md = validate_frame(frame(rows), ValidationConfig(), tokenizer=tokenizer, max_length=64).to_markdown()
    assert "FAILED" in md and "text_not_blank" in md and "1 rows" in md
