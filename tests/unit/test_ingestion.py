import gzip
import json

import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.data.readers import (
    IngestionError,
    count_rows,
    detect_format,
    iter_labeled_chunks,
    normalise_text,
    read_labeled_file,
)
from tests.conftest import FIXTURES


def test_reads_csv_with_row_numbers():
    frame = read_labeled_file(str(FIXTURES / "good.csv"), DataConfig())
    assert list(frame.columns) == ["text", "label", "source", "row"]
    assert len(frame) == 60 and frame["row"].iloc[0] == 1


def test_multiline_quoted_fields_parse():
    frame = read_labeled_file(str(FIXTURES / "multiline.tsv"), DataConfig())
    assert frame["text"].tolist() == ["first line\nsecond line", "plain"]


@pytest.mark.parametrize(
    "name, rule",
    [
        ("missing_label_column.csv", "missing_column"),
        ("header_only.csv", "no_rows"),
        ("empty.csv", "empty_file"),
        ("extra_fields.csv", "malformed_rows"),
        ("binary.csv", "binary_file"),
        ("invalid_utf8.csv", "invalid_encoding"),
    ],
)
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


def _write_rows(path, count, sep=","):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"text{sep}label\n")
        for i in range(count):
            handle.write(f"sentence number {i} with some words{sep}{'ab'[i % 2]}\n")
    return path


def test_chunks_cover_the_file_with_continuous_row_numbers(tmp_path):
    path = _write_rows(tmp_path / "a.csv", 23)
    chunks = list(iter_labeled_chunks(str(path), DataConfig(chunk_rows=5)))
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 3]
    whole = pd.concat(chunks, ignore_index=True)
    assert whole["row"].tolist() == list(range(1, 24))
    assert whole.equals(read_labeled_file(str(path), DataConfig()).astype(whole.dtypes.to_dict()))
    assert count_rows(str(path), DataConfig(chunk_rows=4)) == 23


def test_jsonl_and_parquet_are_chunked_too(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(10)]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    parquet = tmp_path / "a.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    for path in (jsonl, parquet):
        chunks = list(iter_labeled_chunks(str(path), DataConfig(chunk_rows=4)))
        assert [len(c) for c in chunks] == [4, 4, 2]
        assert pd.concat(chunks)["label"].tolist() == [str(i % 3) for i in range(10)]


def test_parquet_missing_column_and_empty(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({"text": ["x"], "category": ["a"]}).to_parquet(path)
    with pytest.raises(IngestionError, match="missing_column"):
        read_labeled_file(str(path), DataConfig())
    pd.DataFrame({"text": pd.Series([], dtype=str), "label": pd.Series([], dtype=str)}).to_parquet(path)
    with pytest.raises(IngestionError) as info:
        read_labeled_file(str(path), DataConfig())
    assert info.value.rule == "no_rows"


def test_errors_name_the_row_or_line(tmp_path):
    with pytest.raises(IngestionError) as info:
        read_labeled_file(str(FIXTURES / "invalid_utf8.csv"), DataConfig())
    assert info.value.line == 3 and "line 3" in str(info.value)
    with pytest.raises(IngestionError) as info:
        read_labeled_file(str(FIXTURES / "extra_fields.csv"), DataConfig())
    assert info.value.row == 2 and info.value.to_dict()["row"] == 2
    # a bad record after a quoted field spanning lines: the row counts records, not lines
    path = tmp_path / "late.csv"
    path.write_text('text,label\n"a\nb\nc",x\nok,y\n' + "fine,z\n" * 3000 + "bad,1,2\n")
    with pytest.raises(IngestionError) as info:
        list(iter_labeled_chunks(str(path), DataConfig(chunk_rows=100)))
    assert info.value.rule == "malformed_rows" and info.value.row == 3003
    path = tmp_path / "late_bytes.csv"
    path.write_bytes(b"text,label\n" + b"ok,a\n" * 5000 + b"caf\xe9,b\n")
    with pytest.raises(IngestionError) as info:
        list(iter_labeled_chunks(str(path), DataConfig(chunk_rows=100)))
    assert info.value.rule == "invalid_encoding" and info.value.line == 5002


def test_empty_labels_and_texts_stay_missing_for_the_contract(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('text,label\nhello,a\n,b\nworld,\nagain,"  "\n')
    frame = read_labeled_file(str(path), DataConfig())
    assert frame["text"].tolist() == ["hello", None, "world", "again"]
    assert frame["label"].tolist() == ["a", "b", None, None]


def test_gzip_csv_and_tsv(tmp_path):
    path = tmp_path / "a.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("text\tlabel\nhello, world\ta\n")
    assert read_labeled_file(str(path), DataConfig())["text"].tolist() == ["hello, world"]


def test_parsing_memory_is_bounded_by_the_chunk_size(tmp_path):
    """Peak Python allocations while streaming do not grow with the file; loading it whole does."""
    import tracemalloc

    def peak(action) -> int:
        tracemalloc.start()
        try:
            action()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = str(_write_rows(tmp_path / "small.csv", 10_000)), str(_write_rows(tmp_path / "large.csv", 80_000))
    config = DataConfig(chunk_rows=1000)
    streamed = [peak(lambda p=p: sum(len(c) for c in iter_labeled_chunks(p, config))) for p in (small, large)]
    whole = [peak(lambda p=p: read_labeled_file(p, config)) for p in (small, large)]
    assert streamed[1] < 1.5 * streamed[0], streamed
    assert whole[1] > 4 * whole[0] and whole[1] > 5 * streamed[1], (whole, streamed)


def test_banking77_quoted_multiline_fields_parse_to_documented_counts(shared_data):
    counts = {"train": 9003, "dev": 1000, "test": 3080}
    for split, expected in counts.items():
        frame = read_labeled_file(str(shared_data / "banking77" / f"{split}.tsv"), DataConfig())
        assert len(frame) == expected, split
        assert frame["label"].notna().all() and frame["label"].nunique() == 77
    train = read_labeled_file(str(shared_data / "banking77" / "train.tsv"), DataConfig(chunk_rows=1000))
    assert train["text"].str.contains("\n").any()
    assert train["text"].str.contains('"decline"', regex=False).any()


def test_binary_garbage_without_nul_bytes(tmp_path):
    import random

    rng = random.Random(3)
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(rng.randrange(1, 256) for _ in range(5000)))
    with pytest.raises(IngestionError) as info:
        read_labeled_file(str(path), DataConfig())
    assert info.value.rule == "invalid_encoding" and info.value.line == 1
