"""Build the default expectation suites and write them as versioned JSON under expectations/suites/.

Run ``python -m expectations.build_suites`` after changing this file; the JSON files are what the
pipeline loads at run time (and what a team edits or extends by hand). Thresholds are suite
parameters filled from ``ValidationConfig``; ``meta.rule`` is the short name reports use;
``meta.requires`` skips an expectation when its input is unavailable; GX ``severity`` decides
between stopping the run (critical) and reporting (warning).
"""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
from great_expectations import expectations as E

SUITE_VERSION = "1"
HERE = Path(__file__).parent / "suites"


def P(name: str) -> dict:
    return {"$PARAMETER": name}


def _meta(rule: str, description: str, **extra) -> dict:
    return {"rule": rule, "description": description, **extra}


def batch_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="labeled_text", meta={"version": SUITE_VERSION}, expectations=[
        E.ExpectColumnToExist(column="text", meta=_meta("text_column_present", "the text column exists")),
        E.ExpectColumnToExist(column="label", meta=_meta("label_column_present", "the label column exists")),
        E.ExpectColumnValuesToNotBeNull(column="text", meta=_meta("text_not_null", "every row has a text")),
        E.ExpectColumnValuesToBeInSet(column="is_blank", value_set=[False],
                                      meta=_meta("text_not_blank", "no text is only whitespace")),
        E.ExpectColumnValuesToBeBetween(column="text_stripped_length", min_value=P("min_text_length"),
                                        meta=_meta("text_min_length", "texts are at least min_text_length characters")),
        E.ExpectColumnValueLengthsToBeBetween(column="text", max_value=P("max_text_length"),
                                              meta=_meta("text_max_length", "texts are at most max_text_length characters")),
        E.ExpectColumnValuesToNotBeNull(column="label", meta=_meta("label_not_null", "every row has a label")),
        E.ExpectColumnValuesToBeInSet(column="label", value_set=P("allowed_labels"),
                                      meta=_meta("label_in_allowed_set", "labels are in the allowed set",
                                                 requires="allowed_labels")),
        E.ExpectColumnValuesToBeInSet(column="is_duplicate", value_set=[False], mostly=P("duplicate_mostly"),
                                      meta=_meta("duplicate_rows", "exact duplicate rows stay under max_duplicate_share")),
        E.ExpectColumnValuesToBeInSet(column="has_control_chars", value_set=[False], mostly=P("control_chars_mostly"),
                                      meta=_meta("control_characters", "rows with control characters stay rare")),
        E.ExpectColumnValuesToBeInSet(column="in_test_split", value_set=[False],
                                      meta=_meta("test_split_leakage", "no new row repeats a text of the frozen test split")),
        E.ExpectColumnValuesToBeInSet(column="is_truncated", value_set=[False], mostly=P("truncated_mostly"),
                                      meta=_meta("truncated_rows", "few rows exceed model.max_length tokens")),
        E.ExpectColumnValuesToBeBetween(column="content_tokens", min_value=1,
                                        meta=_meta("empty_after_tokenization", "every text has a token besides specials")),
        E.ExpectColumnValuesToBeBetween(column="unknown_token_share", max_value=0.5, mostly=P("unknown_token_mostly"),
                                        meta=_meta("unknown_tokens", "few rows are mostly unknown tokens")),
        E.ExpectColumnKLDivergenceToBeLessThan(column="label", partition_object=P("label_partition"),
                                               threshold=P("max_label_drift_kl"), severity="warning",
                                               meta=_meta("label_drift", "the batch's label mix is close to the snapshot's",
                                                          requires="reference_distribution")),
    ])


def snapshot_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name="labeled_text_snapshot", meta={"version": SUITE_VERSION}, expectations=[
        E.ExpectTableRowCountToBeBetween(min_value=2, meta=_meta("at_least_two_classes", "a classifier needs two classes")),
        E.ExpectColumnMinToBeBetween(column="count", min_value=P("min_examples_per_class"),
                                     meta=_meta("min_examples_per_class", "each class has enough examples")),
        E.ExpectColumnMaxToBeBetween(column="share", max_value=P("max_class_share"),
                                     meta=_meta("max_class_share", "no class dominates the snapshot")),
    ])


def write_suites(folder: Path = HERE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suite in (batch_suite(), snapshot_suite()):
        path = folder / f"{suite.name}.json"
        data = suite.to_json_dict()
        data.pop("id", None)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_suites():
        print(written_path)
