"""Build the default expectation suites and write them as versioned JSON under expectations/suites/.

Run ``python -m expectations.build_suites`` after changing this file; the JSON files are what the
pipeline loads at run time (and what a team edits or extends by hand, see expectations/README.md).
Thresholds are suite parameters filled from ``ValidationConfig``. Meta keys the pipeline reads:
``rule`` (the short name reports use), ``description``, ``requires`` (skip the expectation when its
input is unavailable: ``allowed_labels``, ``reference_distribution``, ``tokenizer``) and
``examples_query`` (a pandas query picking example rows for expectations that judge an aggregate) and
``observed_format`` (a ``str.format`` pattern for an aggregate's observed value in reports).
GX ``severity`` decides between stopping the run (``critical``) and reporting (``warning``).
"""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
from great_expectations import expectations as E

SUITE_VERSION = "2"
HERE = Path(__file__).parent / "suites"


def P(name: str) -> dict:
    return {"$PARAMETER": name}


def _meta(rule: str, description: str, **extra) -> dict:
    return {"rule": rule, "description": description, **extra}


def _structure() -> list:
    return [
        E.ExpectColumnToExist(column="text", meta=_meta("text_column_present", "the text column exists")),
        E.ExpectColumnToExist(column="label", meta=_meta("label_column_present", "the label column exists")),
        E.ExpectColumnValuesToBeOfType(column="text", type_="str", meta=_meta("text_is_string", "texts are strings")),
        E.ExpectColumnValuesToBeOfType(
            column="label",
            type_="str",
            meta=_meta("label_is_string", "labels are strings (integers are read as strings)"),
        ),
    ]


def _text_and_labels() -> list:
    return [
        E.ExpectColumnValuesToNotBeNull(column="text", meta=_meta("text_not_null", "every row has a text")),
        E.ExpectColumnValuesToBeInSet(
            column="is_blank", value_set=[False], meta=_meta("text_not_blank", "no text is only whitespace")
        ),
        E.ExpectColumnValuesToBeBetween(
            column="text_stripped_length",
            min_value=P("min_text_length"),
            meta=_meta("text_min_length", "texts are at least min_text_length characters"),
        ),
        E.ExpectColumnValueLengthsToBeBetween(
            column="text",
            max_value=P("max_text_length"),
            meta=_meta("text_max_length", "texts are at most max_text_length characters"),
        ),
        E.ExpectColumnValuesToNotBeNull(column="label", meta=_meta("label_not_null", "every row has a label")),
        E.ExpectColumnValuesToBeInSet(
            column="label_is_missing_marker",
            value_set=[False],
            meta=_meta(
                "label_not_missing_marker",
                "no label is a missing-value marker such as None, null, NaN or NA (validation.missing_label_markers)",
            ),
        ),
        E.ExpectColumnValuesToBeInSet(
            column="label",
            value_set=P("allowed_labels"),
            meta=_meta(
                "label_in_allowed_set",
                "labels are in the allowed set (configured, else the current snapshot's)",
                requires="allowed_labels",
            ),
        ),
        E.ExpectColumnValuesToBeInSet(
            column="has_control_chars",
            value_set=[False],
            mostly=P("control_chars_mostly"),
            meta=_meta("control_characters", "rows with control characters stay under max_control_char_share"),
        ),
    ]


def _duplicates_and_leakage() -> list:
    return [
        E.ExpectColumnValuesToBeInSet(
            column="is_duplicate",
            value_set=[False],
            mostly=P("duplicate_mostly"),
            meta=_meta("duplicate_rows", "exact duplicate rows stay under max_duplicate_share"),
        ),
        E.ExpectColumnValuesToBeInSet(
            column="is_conflict",
            value_set=[False],
            mostly=P("conflict_mostly"),
            meta=_meta(
                "conflicting_labels",
                "rows whose normalised text carries another label "
                "(in the batch or the snapshot) stay under data.max_conflict_share",
            ),
        ),
        E.ExpectColumnValuesToBeInSet(
            column="in_test_split",
            value_set=[False],
            mostly=P("leakage_mostly"),
            meta=_meta(
                "test_split_leakage", "rows repeating a text of the frozen test split stay under max_leakage_share"
            ),
        ),
    ]


def _tokenizer_checks() -> list:
    return [
        E.ExpectColumnValuesToBeBetween(
            column="token_count",
            max_value=P("max_tokens"),
            mostly=P("truncated_mostly"),
            meta=_meta(
                "truncated_rows",
                "rows longer than model.max_length tokens stay under max_truncated_share",
                requires="tokenizer",
            ),
        ),
        E.ExpectColumnValuesToBeBetween(
            column="content_tokens",
            min_value=1,
            meta=_meta(
                "empty_after_tokenization", "every text keeps a token besides the special ones", requires="tokenizer"
            ),
        ),
        E.ExpectColumnMeanToBeBetween(
            column="unknown_token_share",
            max_value=P("max_unknown_token_share"),
            meta=_meta(
                "unknown_tokens",
                "the mean share of unknown tokens per row stays under max_unknown_token_share",
                requires="tokenizer",
                examples_query="unknown_token_share > 0",
                observed_format="mean unknown-token share {:.2%}",
            ),
        ),
    ]


def batch_suite() -> gx.ExpectationSuite:
    drift = E.ExpectColumnKLDivergenceToBeLessThan(
        column="label",
        partition_object=P("label_partition"),
        threshold=P("max_label_drift_kl"),
        severity="warning",
        meta=_meta(
            "label_drift",
            "the batch's label mix stays close to the snapshot's (KL divergence)",
            requires="reference_distribution",
        ),
    )
    return gx.ExpectationSuite(
        name="labeled_text",
        meta={"version": SUITE_VERSION},
        expectations=[*_structure(), *_text_and_labels(), *_duplicates_and_leakage(), *_tokenizer_checks(), drift],
    )


def snapshot_suite() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(
        name="labeled_text_snapshot",
        meta={"version": SUITE_VERSION},
        expectations=[
            E.ExpectTableRowCountToBeBetween(
                min_value=2,
                meta=_meta(
                    "at_least_two_classes",
                    "a classifier needs two classes",
                    examples_query="count > 0",
                    observed_format="{} classes",
                ),
            ),
            E.ExpectColumnMinToBeBetween(
                column="count",
                min_value=P("min_examples_per_class"),
                meta=_meta(
                    "min_examples_per_class",
                    "each class has enough examples",
                    examples_query="count < @min_examples_per_class",
                    observed_format="smallest class: {} rows",
                ),
            ),
            E.ExpectColumnMaxToBeBetween(
                column="share",
                max_value=P("max_class_share"),
                meta=_meta(
                    "max_class_share",
                    "no class dominates the snapshot",
                    examples_query="share > @max_class_share",
                    observed_format="largest class: {:.1%}",
                ),
            ),
        ],
    )


def _drift_pair(
    rule: str, column: str, description: str, observed_format: str, low: str | None = None, high: str | None = None
) -> list:
    """One mean check at the warning level and one at the error level, thresholds from the drift reference."""
    pair = []
    for level, severity in (("warning", "warning"), ("error", "critical")):
        bounds = {
            **({"min_value": P(f"{low}_{level}")} if low else {}),
            **({"max_value": P(f"{high}_{level}")} if high else {}),
        }
        pair.append(
            E.ExpectColumnMeanToBeBetween(
                column=column,
                severity=severity,
                **bounds,
                meta=_meta(f"{rule}_{level}", description, statistic=rule, observed_format=observed_format),
            )
        )
    return pair


def drift_suite() -> gx.ExpectationSuite:
    """Scored texts against the model's training snapshot; parameters come from the version's drift reference."""
    labels = [
        E.ExpectColumnKLDivergenceToBeLessThan(
            column="label",
            partition_object=P("label_partition"),
            threshold=P(f"label_kl_{level}"),
            severity=severity,
            meta=_meta(
                f"label_distribution_{level}",
                "predicted labels are distributed like the training labels",
                statistic="label_distribution",
            ),
        )
        for level, severity in (("warning", "warning"), ("error", "critical"))
    ]
    return gx.ExpectationSuite(
        name="scoring_drift",
        meta={"version": "1"},
        expectations=[
            *_drift_pair(
                "text_length",
                "tokens",
                "mean length in word pieces stays close to the training texts'",
                "{:.1f} tokens",
                low="tokens_mean_min",
                high="tokens_mean_max",
            ),
            *_drift_pair(
                "unknown_tokens",
                "unknown_share",
                "unknown-token share stays near the training texts'",
                "{:.2%}",
                high="unknown_share_max",
            ),
            *_drift_pair(
                "unseen_tokens",
                "unseen_share",
                "share of word pieces never seen in training stays near its level on held-out training texts",
                "{:.2%}",
                high="unseen_share_max",
            ),
            *_drift_pair(
                "over_max_length",
                "over_max_length",
                "share of texts cut at model.max_length stays near the training texts'",
                "{:.2%}",
                high="over_max_length_max",
            ),
            *_drift_pair(
                "confidence",
                "confidence",
                "mean confidence stays near its level on held-out training texts",
                "{:.3f}",
                low="confidence_min",
            ),
            *labels,
        ],
    )


def suite_to_dict(suite: gx.ExpectationSuite) -> dict:
    """The JSON form stored under suites/ (GX's own, without the volatile ids)."""
    data = suite.to_json_dict()
    data.pop("id", None)
    for expectation in data["expectations"]:
        expectation.pop("id", None)
    return data


def write_suites(folder: Path = HERE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suite in (batch_suite(), snapshot_suite(), drift_suite()):
        path = folder / f"{suite.name}.json"
        path.write_text(json.dumps(suite_to_dict(suite), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_suites():
        print(written_path)
