"""The scoring stage's parts without a model: reading unlabeled files, the ledger, atomic output, drift, to-label."""

import io
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.config import ScoringConfig
from pipeline.data.sources import IngestionError
from pipeline.scoring import inbox
from pipeline.scoring.drift import check_drift
from pipeline.scoring.inputs import iter_stdin_lines, iter_unlabeled_chunks
from pipeline.scoring.model import parse_model_uri
from pipeline.scoring.to_label import keep_candidates, select_to_label
from pipeline.scoring.writer import PredictionWriter, join_predictions
from pipeline.workspace import Workspace


def test_reads_csv_jsonl_and_parquet_in_chunks_keeping_every_column(tmp_path):
    frame = pd.DataFrame({"id": [f"t{i}" for i in range(5)], "text": [f"text {i}" for i in range(5)]})
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.jsonl", "a.parquet"):
        chunks = list(iter_unlabeled_chunks(str(tmp_path / name), "text", chunk_rows=2))
        assert [len(c) for c in chunks] == [2, 2, 1], name
        assert pd.concat(chunks, ignore_index=True)[["id", "text"]].equals(frame), name


def test_unreadable_inputs_name_the_file_and_the_rule(tmp_path):
    (tmp_path / "no_text.csv").write_text("body\nhello\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    (tmp_path / "notes.txt").write_text("hello\n")
    cases = {
        "no_text.csv": "missing_column",
        "bad.jsonl": "invalid_json",
        "notes.txt": "unsupported_format",
        "absent.csv": "not_found",
    }
    for name, rule in cases.items():
        with pytest.raises(IngestionError) as caught:
            list(iter_unlabeled_chunks(str(tmp_path / name), "text", chunk_rows=10))
        assert caught.value.rule == rule and name in str(caught.value)
    with pytest.raises(IngestionError, match="line 2"):
        list(iter_unlabeled_chunks(str(tmp_path / "bad.jsonl"), "text", chunk_rows=10))


def test_standard_input_is_one_text_per_line():
    chunks = list(iter_stdin_lines(2, "text", io.StringIO("first\n\nsecond one\nthird\n")))
    assert [c["text"].tolist() for c in chunks] == [["first", "second one"], ["third"]]


def test_predictions_keep_input_columns_and_rename_clashes():
    joined = join_predictions(
        pd.DataFrame({"text": ["a"], "label": ["old"]}), pd.DataFrame({"label": ["new"], "score": [0.9]})
    )
    assert list(joined.columns) == ["text", "input_label", "label", "score"]


def test_output_appears_only_when_complete(tmp_path):
    target = tmp_path / "out" / "p.parquet"
    with pytest.raises(RuntimeError), PredictionWriter(target) as writer:
        writer.write(pd.DataFrame({"text": ["a"], "label": ["x"]}))
        raise RuntimeError("scoring failed half-way")
    assert not target.exists() and list(target.parent.iterdir()) == []
    for fmt, path in (("parquet", target), ("csv", tmp_path / "out" / "p.csv")):
        with PredictionWriter(path, fmt) as writer:
            writer.write(pd.DataFrame({"text": ["a"], "top_labels": [["x", "y"]]}))
            writer.write(pd.DataFrame({"text": ["b"], "top_labels": [["y", "x"]]}))
            writer.commit()
        read = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
        assert read["text"].tolist() == ["a", "b"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["p.csv", "p.parquet"]
    assert json.loads(pd.read_csv(tmp_path / "out" / "p.csv")["top_labels"][1]) == ["y", "x"]


def test_ledger_scores_each_content_once_and_retries_failures_a_bounded_number_of_times(tmp_path):
    workspace = Workspace(tmp_path / "ws").ensure()
    folder = inbox.inbox_dir(workspace)
    folder.mkdir()
    (folder / "a.csv").write_text("text\nhello\n")
    (folder / "copy_of_a.csv").write_text("text\nhello\n")
    (folder / "b.csv").write_text("text\nbye\n")
    (folder / ".partial.csv").write_text("text\nhalf\n")
    (folder / "readme.txt").write_text("not data")
    ledger = inbox.ScoringLedger(workspace)
    files = inbox.list_inputs([str(folder)])
    assert [p.rsplit("/", 1)[1] for p in files] == ["a.csv", "b.csv", "copy_of_a.csv"]
    todo, skipped = ledger.plan(files, max_attempts=2)
    assert [t.uri.rsplit("/", 1)[1] for t in todo] == ["a.csv", "b.csv"]
    assert skipped[0]["reason"] == "same content as another file in this run"
    ledger.record(todo[0], inbox.SCORED, output="out.parquet", model_version="3")
    ledger.record(todo[1], inbox.FAILED, error="boom")
    todo, skipped = ledger.plan(files, max_attempts=2)
    assert [t.uri.rsplit("/", 1)[1] for t in todo] == ["b.csv"]
    assert {s["reason"] for s in skipped} == {"already scored by version 3 into out.parquet"}
    ledger.record(todo[0], inbox.FAILED, error="boom again")
    todo, skipped = ledger.plan(files, max_attempts=2)
    assert todo == [] and any("failed 2 times (last: boom again)" in s["reason"] for s in skipped)
    todo, skipped = ledger.plan([str(folder / "gone.csv")], max_attempts=2)
    assert todo == [] and skipped[0]["reason"].startswith("cannot be read: FileNotFoundError")


def test_output_names_follow_the_input_and_its_content():
    assert (
        inbox.output_name("s3://bucket/in/Tickets May.csv.gz", "abcdef0123", "parquet")
        == "Tickets_May.abcdef01.predictions.parquet"
    )


def test_model_uris_are_checked():
    assert parse_model_uri("models:/intents@champion") == ("intents", "champion", None)
    assert parse_model_uri("models:/intents/7") == ("intents", None, "7")
    with pytest.raises(ValueError, match="models:/NAME@ALIAS"):
        parse_model_uri("runs:/abc/model")


def test_to_label_takes_the_least_certain_once_per_near_duplicate():
    texts = ["Refund me NOW!!", "refund me now", "where is my parcel", "app crashes", "refund me now 2"]
    chunk = pd.DataFrame({"text": texts, "uncertainty": [0.9, 0.95, 0.1, 0.5, 0.8]})
    kept = keep_candidates(None, chunk.iloc[:3], limit=10)
    kept = keep_candidates(kept, chunk.iloc[3:], limit=4)
    assert len(kept) == 4 and "where is my parcel" not in kept["text"].tolist()
    chosen = select_to_label(kept, rows=3)
    assert chosen["text"].tolist() == ["refund me now", "app crashes"]


def _features(rng, rows, tokens, unseen, confidence, labels, weights):
    return pd.DataFrame(
        {
            "chars": tokens * 5,
            "tokens": rng.poisson(tokens, rows),
            "unknown_share": np.zeros(rows),
            "unseen_share": np.clip(rng.normal(unseen, 0.02, rows), 0, 1),
            "over_max_length": np.zeros(rows),
            "label": rng.choice(labels, rows, p=weights),
            "confidence": np.clip(rng.normal(confidence, 0.05, rows), 0, 1),
            "margin": np.ones(rows),
            "entropy": np.zeros(rows),
        }
    )


REFERENCE = {
    "tokens_mean": 13.0,
    "unknown_share": 0.0,
    "unseen_share": 0.01,
    "over_max_length_share": 0.0,
    "confidence_mean": 0.9,
    "label_distribution": {"a": 0.5, "b": 0.5},
    "seen_tokens": [1, 2, 3],
}


def test_drift_is_quiet_on_the_reference_distribution_and_flags_a_shift():
    rng = np.random.default_rng(0)
    config = ScoringConfig()
    same = check_drift(_features(rng, 400, 13, 0.01, 0.9, ["a", "b"], [0.5, 0.5]), REFERENCE, config)
    assert same.status == "ok" and same.findings == [] and "seen_tokens" not in same.reference
    shifted = check_drift(_features(rng, 400, 40, 0.6, 0.6, ["a", "b"], [0.97, 0.03]), REFERENCE, config)
    assert shifted.status == "error"
    failed = {c["rule"] for c in shifted.findings}
    assert {"text_length_error", "unseen_tokens_error", "confidence_error", "label_distribution_error"} <= failed
    mild = check_drift(_features(rng, 400, 22, 0.01, 0.9, ["a", "b"], [0.5, 0.5]), REFERENCE, config)
    assert mild.status == "warning" and mild.reason == "warning: text_length"


def test_drift_needs_a_reference_and_enough_rows():
    rng = np.random.default_rng(1)
    config = ScoringConfig(drift_min_rows=50)
    assert check_drift(_features(rng, 10, 13, 0.0, 0.9, ["a"], [1.0]), REFERENCE, config).status == "skipped"
    assert "no drift reference" in check_drift(_features(rng, 80, 13, 0.0, 0.9, ["a"], [1.0]), None, config).reason
