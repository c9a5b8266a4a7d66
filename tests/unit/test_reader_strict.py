"""The reader never guesses: every record is kept as written or the file is refused with a named rule and line."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.config import DataConfig, ValidationConfig
from pipeline.data.readers import IngestionError, iter_labeled_chunks, read_labeled_file
from pipeline.validation.contract import validate_frame
from tests.conftest import FIXTURES

READER = FIXTURES / "reader"


def refusal(path, config=None) -> IngestionError:
    with pytest.raises(IngestionError) as info:
        read_labeled_file(str(path), config or DataConfig())
    return info.value


def test_an_opening_quote_that_closes_lines_later_is_refused_not_merged():
    # 60 records written; a lax reader returns 50 rows, one of them ten lines long with the wrong label
    error = refusal(READER / "unbalanced_quote.csv")
    assert error.rule == "unbalanced_quote"
    assert error.line == 21 and error.row == 20, "the line where the quoted field opened (header is line 1)"
    assert "unbalanced_quote.csv" in str(error) and "line 21" in str(error)


def test_a_quote_closed_right_before_the_delimiter_lines_later_is_refused_as_swallowed_records():
    error = refusal(READER / "swallowed_records.csv")
    assert error.rule == "swallowed_records" and error.line == 21
    assert "pos" in error.message or "neg" in error.message


def test_a_quote_that_never_closes_is_refused_with_its_line(tmp_path):
    path = tmp_path / "eof.csv"
    path.write_text('text,label\nfine,a\nok,b\n"never closed,a\nmore,b\n')
    error = refusal(path)
    assert error.rule == "unbalanced_quote" and error.line == 4 and "never comes" in error.message


def test_tsv_quoted_word_is_refused_not_stripped_and_read_literally_with_quoting_none():
    error = refusal(READER / "quoted_word.tsv")
    assert error.rule == "unbalanced_quote" and error.line == 2
    frame = read_labeled_file(str(READER / "quoted_word.tsv"), DataConfig(quoting="none"))
    assert frame["text"].tolist() == ['"great" movie', "awful film"]


def test_quotes_inside_an_unquoted_field_are_kept_as_written(tmp_path):
    path = tmp_path / "inner.csv"
    path.write_text('text,label\nhe said "hi" twice,a\n"she said ""bye""",b\n"two\nlines",a\n')
    frame = read_labeled_file(str(path), DataConfig())
    assert frame["text"].tolist() == ['he said "hi" twice', 'she said "bye"', "two\nlines"]


def test_a_record_with_too_few_fields_is_refused(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("text,label\nfine,a\njust text\n")
    error = refusal(path)
    assert error.rule == "malformed_rows" and error.row == 2 and error.line == 3


def test_blank_lines_are_skipped_and_rows_count_records(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("text,label\n\nfine,a\n\nok,b\n")
    assert read_labeled_file(str(path), DataConfig())["row"].tolist() == [1, 2]


@pytest.mark.parametrize("name, line", [("text_not_string.jsonl", 2), ("text_is_list.jsonl", 4)])
def test_jsonl_text_that_is_not_a_string_is_refused(name, line):
    error = refusal(READER / name)
    assert error.rule == "text_not_string" and error.line == line


def test_jsonl_label_that_is_a_list_is_refused(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a", "label": ["x", "y"]}\n')
    assert refusal(path).rule == "label_not_scalar"


def test_jsonl_label_key_that_vanishes_after_the_first_chunk_leaves_missing_labels_not_a_crash(tmp_path):
    path = tmp_path / "x.jsonl"
    rows = [{"text": f"t{i}", "label": "a"} for i in range(5)] + [{"text": f"u{i}"} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    frame = pd.concat(list(iter_labeled_chunks(str(path), DataConfig(chunk_rows=5))), ignore_index=True)
    assert frame["label"].tolist() == ["a"] * 5 + [None] * 5
    result = validate_frame(frame, ValidationConfig())
    assert not result.success and "label_not_null" in [f["rule"] for f in result.failures]


def test_missing_value_markers_as_labels_are_refused_by_a_named_rule():
    frame = pd.DataFrame(
        {
            "text": [f"text {i}" for i in range(8)],
            "label": ["a", "b", "None", "null", "NaN", " NA ", "a", "b"],
            "source": "x.csv",
            "row": range(1, 9),
        }
    )
    result = validate_frame(frame, ValidationConfig())
    failure = next(f for f in result.failures if f["rule"] == "label_not_missing_marker")
    assert failure["observed"].startswith("4 of 8 rows") and failure["examples"][0]["row"] == 3
    configured = validate_frame(frame, ValidationConfig(missing_label_markers=[]))
    assert "label_not_missing_marker" not in [f["rule"] for f in configured.failures]


@pytest.mark.parametrize(
    "name, rule, line",
    [("unbalanced_quote.csv", "unbalanced_quote", 21), ("text_not_string.jsonl", "text_not_string", 2)],
)
def test_pipeline_validate_refuses_with_the_rule_and_line(tmp_path, name, rule, line):
    from pipeline.cli.main import app

    result = CliRunner().invoke(app, ["validate", str(READER / name), "--json"], env={"PIPELINE_HOME": str(tmp_path)})
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout)["failures"][0]
    assert failure["rule"] == rule and failure["examples"][0]["line"] == line
    text = CliRunner().invoke(app, ["validate", str(READER / name)], env={"PIPELINE_HOME": str(tmp_path)})
    assert rule in text.stdout and f"line {line}" in text.stdout
