"""Small files validated together give each file the verdict it gets alone, from one validation."""

import pandas as pd
import pytest

from pipeline.config import ValidationConfig
from pipeline.validation import contract, pooled
from pipeline.validation.columns import ContractReference
from pipeline.validation.contract import validate_frame
from pipeline.validation.pooled import pools, validate_files


def frame(rows, name):
    f = pd.DataFrame(rows, columns=["text", "label"]).astype(object)
    f = f.where(f.notna(), None)
    f["source"] = name
    f["row"] = range(1, len(f) + 1)
    return f


GOOD = [(f"the order number {i} has not arrived", "shipping") for i in range(6)] + [
    (f"I was billed twice for invoice {i}", "billing") for i in range(6)
]
FILES = {
    "clean.csv": GOOD,
    "clean_too.csv": [(f"where is parcel {i}", "shipping") for i in range(3)] + [("refund my fee", "billing")],
    "blank_and_null.csv": [("   ", "shipping"), ("fine text", None), *GOOD[:4]],
    "duplicates.csv": [GOOD[0]] * 8 + GOOD[6:8],
    "conflict_inside.csv": [("the same words", "shipping"), ("The  same words", "billing"), *GOOD[:6]],
    "conflict_with_snapshot.csv": [("known text from before", "billing"), *GOOD[:2]],
    "unknown_label.csv": [("my card is frozen", "cards"), *GOOD[:3]],
    "drift.csv": [(f"another billing question {i}", "billing") for i in range(9)],
    "control_chars.csv": [("bad\x07bell", "billing"), ("bell\x07again", "billing"), *GOOD[:2]],
    "marker.csv": [("text with no label", "NaN"), *GOOD[:3]],
    "leak.csv": [("a text of the test split", "billing"), *GOOD[:3]],
    "all_blank.csv": [(" ", "shipping"), ("", "billing")],
    "long.csv": [("word " * 200, "shipping"), *GOOD[:3]],
    "symbols.csv": [("???", "shipping"), ("!!!", "billing"), *GOOD[:2]],
}
REFERENCE = ContractReference.from_frame(
    frame([("known text from before", "shipping"), *GOOD, ("a text of the test split", "billing")], "snapshot")
)

COMPARED_WITH = dict(
    max_length=64,
    allowed_labels=["shipping", "billing"],
    reference=REFERENCE,
    test_texts={"a text of the test split"},
)


@pytest.fixture(scope="module")
def tokenizer():
    from pipeline.training.modeling import load_tokenizer

    return load_tokenizer("packaged:all-minilm-l6-v2")


def comparable(result):
    return [(c["rule"], c["success"], c["observed"], c["examples"]) for c in result.checks]


def test_each_pooled_file_gets_the_verdict_it_gets_alone(tokenizer, monkeypatch):
    config = ValidationConfig(max_duplicate_share=0.2, max_text_length=500, max_leakage_share=0.1)
    frames = [frame(rows, name) for name, rows in FILES.items()]
    inputs = dict(tokenizer=tokenizer, **COMPARED_WITH)
    alone = [validate_frame(f, config, **inputs) for f in frames]
    runs = []
    real = contract.gx_results
    monkeypatch.setattr(pooled, "gx_results", lambda *a, **k: runs.append(1) or real(*a, **k))
    together = validate_files(frames, config, **inputs)
    assert len(runs) == 1  # one validation for all the files
    verdicts = {name: (a.success, sorted(f["rule"] for f in a.failures)) for name, a in zip(FILES, alone)}
    assert verdicts["clean.csv"] == (True, []) and verdicts["clean_too.csv"] == (True, [])
    assert not verdicts["duplicates.csv"][0] and not verdicts["conflict_inside.csv"][0]
    assert sum(not ok for ok, _ in verdicts.values()) >= 10  # the cases really fail alone
    for name, a, t in zip(FILES, alone, together):
        assert comparable(t) == comparable(a), name
        assert (t.success, t.rows, t.skipped) == (a.success, a.rows, a.skipped), name


def test_label_drift_is_judged_per_file(tokenizer):
    config = ValidationConfig(severity={"label_drift": "error"}, max_label_drift_kl=0.5)
    frames = [frame(FILES["drift.csv"], "drift.csv"), frame(GOOD, "clean.csv")]
    inputs = dict(tokenizer=tokenizer, max_length=64, reference=REFERENCE)
    together = validate_files(frames, config, **inputs)
    alone = [validate_frame(f, config, **inputs) for f in frames]
    assert [r.success for r in together] == [r.success for r in alone] == [False, True]
    assert comparable(together[0]) == comparable(alone[0])


def test_files_are_pooled_up_to_a_row_budget_and_large_files_run_alone():
    assert pools([3, 4, 5], limit=10) == [[0, 1, 2]]
    assert pools([3, 20, 4], limit=10) == [[1], [0, 2]]
    budget = pooled.POOL_ROWS
    assert pools([budget - 1, 2, 2], limit=budget) == [[0], [1, 2]]


def test_a_suite_that_cannot_be_taken_apart_runs_each_file_alone(tokenizer, tmp_path, monkeypatch):
    suite = tmp_path / "table.json"
    suite.write_text(
        '{"name": "table", "expectations": [{"type": "expect_table_row_count_to_be_between",'
        ' "kwargs": {"min_value": 3}, "meta": {"rule": "enough_rows"}}]}'
    )
    config = ValidationConfig(suite=str(suite))
    frames = [frame(GOOD[:2], "two.csv"), frame(GOOD[:5], "five.csv")]
    results = validate_files(frames, config, tokenizer=tokenizer, max_length=64)
    assert [r.success for r in results] == [False, True]


def test_a_large_file_validated_in_chunks_gets_the_verdict_of_the_whole(tokenizer, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.data.deduplication import ROW_SCHEMA
    from pipeline.validation.streamed import validate_part

    rows = [row for name, file_rows in FILES.items() for row in file_rows]
    rows += [(f"one more distinct question number {i}", "shipping" if i % 3 else "billing") for i in range(90)]
    whole = frame(rows, "big.csv")
    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pandas(whole, schema=ROW_SCHEMA, preserve_index=False), path)
    config = ValidationConfig(max_duplicate_share=0.2, max_text_length=500, max_leakage_share=0.1, token_check_rows=100)
    inputs = dict(tokenizer=tokenizer, **COMPARED_WITH)
    at_once = validate_frame(whole, config, **inputs)
    chunked = validate_part(path, len(whole), config, chunk_rows=7, **inputs)
    assert sum(not c["success"] for c in at_once.checks) >= 5  # the comparison covers failing rules
    assert comparable(chunked) == comparable(at_once)
    assert (chunked.success, chunked.rows, chunked.skipped) == (at_once.success, at_once.rows, at_once.skipped)
    assert at_once.notes and at_once.notes[0] in chunked.notes  # the same token sample, noted the same way

    drift = ValidationConfig(severity={"label_drift": "error"}, max_label_drift_kl=0.01)
    assert comparable(validate_part(path, len(whole), drift, chunk_rows=9, **inputs)) == comparable(
        validate_frame(whole, drift, **inputs)
    )


def test_ingest_pools_small_files_streams_large_ones_and_refuses_each_alone(tmp_path, monkeypatch):
    from pipeline.config import load_config
    from pipeline.data import steps as data_steps
    from pipeline.validation import streamed
    from pipeline.workspace import prepare_workspace

    config = load_config(
        overrides=[f"workspace={tmp_path / 'ws'}", "validation.token_check_rows=100", "validation.data_docs=false"]
    )
    workspace = prepare_workspace(config)

    def write(name, rows):
        lines = ["text,label"] + [f"{text},{label}" for text, label in rows]
        (workspace.landing / name).write_text("\n".join(lines) + "\n", encoding="utf-8")

    many = [(f"question {i} about my {'card' if i % 2 else 'parcel'}", "ab"[i % 2]) for i in range(150)]
    write("large_good.csv", many)
    write("large_bad.csv", [(f"another question {i}", "ab"[i % 2]) for i in range(148)] + [("bad\x07bell", "a")] * 12)
    for i in range(5):
        write(f"small_{i}.csv", [(f"small file {i} row {j}", "ab"[j % 2]) for j in range(4)])
    write("small_bad.csv", [("   ", "a"), ("fine words here", "b")])
    chunked, pooled_runs = [], []
    real_part, real_gx = streamed.validate_part, pooled.gx_results
    monkeypatch.setattr(
        "pipeline.validation.steps.validate_part", lambda *a, **k: chunked.append(a[0]) or real_part(*a, **k)
    )
    monkeypatch.setattr(pooled, "gx_results", lambda *a, **k: pooled_runs.append(1) or real_gx(*a, **k))
    outcome = data_steps.ingest_and_validate(config, workspace)
    assert len(chunked) == 2 and len(pooled_runs) == 1  # two large files in chunks, six small ones at once
    refused = {q["uri"].rsplit("/", 1)[-1]: q["rule"] for q in outcome.quarantined}
    assert refused == {"large_bad.csv": "control_characters", "small_bad.csv": "text_not_blank"}
    assert sorted(u.rsplit("/", 1)[-1] for u in outcome.new_files) == sorted(
        ["large_good.csv"] + [f"small_{i}.csv" for i in range(5)]
    )
    message = outcome.contracts[str(workspace.landing / "large_bad.csv")]["failures"][0]
    assert message["observed"] == "12 of 160 rows (7.50%)" and message["examples"][0]["row"] == 149


def test_ingest_compares_with_the_snapshot_batch_by_batch_never_loading_it_whole(tmp_path, monkeypatch):
    import numpy as np

    from pipeline.config import load_config
    from pipeline.data import steps as data_steps
    from pipeline.data.readers import normalise_text
    from pipeline.data.snapshots import Snapshot
    from pipeline.data.splits import split_frame
    from pipeline.data.store import DataStore
    from pipeline.validation.columns import key_hashes
    from pipeline.validation.steps import contract_inputs
    from pipeline.workspace import prepare_workspace

    config = load_config(overrides=[f"workspace={tmp_path / 'ws'}", "validation.data_docs=false"])
    workspace = prepare_workspace(config)
    first = [(f"Question number {i} about my card", "ab"[i % 2]) for i in range(200)]
    (workspace.landing / "first.csv").write_text(
        "text,label\n" + "\n".join(f"{t},{lab}" for t, lab in first) + "\n", encoding="utf-8"
    )
    assert data_steps.ingest_and_validate(config, workspace).snapshot_id
    head = DataStore(workspace, config.data).head()
    test_split = split_frame(head.load(), config.data)["test"]
    expected_test = test_split["text"].map(normalise_text)
    assert len(expected_test) > 5

    monkeypatch.setattr(Snapshot, "load", lambda self: pytest.fail("the contract loaded the snapshot whole"))
    inputs = contract_inputs(config, head)
    assert np.array_equal(np.sort(inputs["test_texts"]), np.sort(key_hashes(expected_test)))
    assert inputs["reference"].distribution == {"a": 0.5, "b": 0.5}

    leaked = (test_split["text"].iloc[0], test_split["label"].iloc[0])  # same label: a leak, no conflict
    second = [leaked, ("QUESTION number 1 about my card", "a")] + [(f"fresh text {i}", "ab"[i % 2]) for i in range(4)]
    (workspace.landing / "second.csv").write_text(
        "text,label\n" + "\n".join(f"{t},{lab}" for t, lab in second) + "\n", encoding="utf-8"
    )
    outcome = data_steps.ingest_and_validate(config, workspace)
    contract = outcome.contracts[str(workspace.landing / "second.csv")]
    observed = {c["rule"]: c["observed"] for c in contract["checks"]}
    assert observed["test_split_leakage"].startswith("1 of 6 rows")
    assert observed["conflicting_labels"].startswith("1 of 6 rows")  # row 1 of first.csv is labeled b
