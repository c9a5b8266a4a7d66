import gzip
import json

import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.ingestion import IngestionError, detect_format, normalise_text, read_labeled_file
from tests.conftest import FIXTURES


def test_reads_csv_with_row_numbers():
    frame = read_labeled_file(str(FIXTURES / "good.csv"), DataConfig())
    assert list(frame.columns) == ["text", "label", "source", "row"]
    assert len(frame) == 60 and frame["row"].iloc[0] == 1


def test_multiline_quoted_fields_parse():
    frame = read_labeled_file(str(FIXTURES / "multiline.tsv"), DataConfig())
    assert frame["text"].tolist() == ["first line\nsecond line", "plain"]


@pytest.mark.parametrize("name, rule", [
    ("missing_label_column.csv", "missing_column"),
    ("header_only.csv", "no_rows"),
    ("empty.csv", "empty_file"),
    ("extra_fields.csv", "malformed_rows"),
    ("binary.csv", "binary_file"),
    ("invalid_utf8.csv", "invalid_encoding"),
])
def test_bad_files_name_file_and_rule(name, rule):
    with pytest.raises(IngestionError) as info:
        read_labeled_file(str(FIXTURES / name), DataConfig())
    assert info.value.rule == rule
    assert name in str(info.value)


def test_wrong_delimiter_hint(tmp_path):
    path = tmp_path / "tabs.csv"
    path.write_text("text\tlabel\nhello\ta\n")
    with pytest.raises(IngestionError, match="another delimiter"):
        read_labeled_file(str(path), DataConfig())


def test_jsonl_gzip_parquet_and_bom(tmp_path):
    rows = [{"text": "a b", "label": 1}, {"text": "c", "label": 0}]
    gz = tmp_path / "x.jsonl.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write("\n".join(json.dumps(r) for r in rows))
    assert read_labeled_file(str(gz), DataConfig())["label"].tolist() == ["1", "0"]
    parquet = tmp_path / "x.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    assert read_labeled_file(str(parquet), DataConfig())["text"].tolist() == ["a b", "c"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufefftext,label\nhi,a\n".encode("utf-8"))
    assert read_labeled_file(str(bom), DataConfig())["text"].tolist() == ["hi"]


def test_invalid_json_line_names_row(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{broken\n')
    with pytest.raises(IngestionError) as info:
        read_labeled_file(str(path), DataConfig())
    assert info.value.row == 2 and info.value.rule == "invalid_json"


def test_custom_columns_and_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("sentence,intent\ncaf\xe9,order\n".encode("latin-1"))
    frame = read_labeled_file(str(path), DataConfig(text_column="sentence", label_column="intent", encoding="latin-1"))
    assert frame["text"].tolist() == ["caf\xe9"]


def test_memory_filesystem():
    import fsspec

    with fsspec.open("memory://landing/a.csv", "w") as handle:
        handle.write("text,label\nhello,a\n")
    assert read_labeled_file("memory://landing/a.csv", DataConfig())["label"].tolist() == ["a"]


def test_unknown_extension():
    with pytest.raises(IngestionError, match="unsupported_format"):
        detect_format("data.xlsx")


def test_normalise_text():
    assert normalise_text("  Hello\tWORLD ") == "hello world"
