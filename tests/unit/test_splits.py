import pandas as pd

from pipeline.config import DataConfig
from pipeline.data.splits import assign_splits, split_frame


def test_split_of_a_text_never_changes_as_data_grows():
    small = pd.Series([f"text {i}" for i in range(500)])
    large = pd.Series([f"text {i}" for i in range(5000)])
    a = assign_splits(small, 0.1, 0.1, "v1")
    b = assign_splits(large, 0.1, 0.1, "v1")
    assert (a == b.iloc[:500]).all()
    assert 0.05 < (b == "test").mean() < 0.15


def test_normalised_duplicates_share_a_split():
    s = assign_splits(pd.Series(["Hello  World", "hello world"]), 0.3, 0.3, "v1")
    assert s.iloc[0] == s.iloc[1]


def test_holdout_is_the_test_split_and_removed_from_training():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "label": ["a", "b"] * 50})
    holdout = pd.DataFrame({"text": ["t1", "t2"], "label": ["b", "a"]})
    splits = split_frame(frame, DataConfig(), holdout)
    assert splits["test"]["text"].tolist() == ["t1", "t2"]
    assert not set(splits["train"]["text"]) & {"t1", "t2"}
    assert len(splits["train"]) + len(splits["validation"]) == 98


def test_test_split_only_grows_as_snapshots_grow(tmp_path):
    from pipeline.data.store import DataStore
    from pipeline.workspace import Workspace

    store = DataStore(Workspace(tmp_path / "ws"), DataConfig())
    tests = []
    for batch in range(3):
        rows = pd.DataFrame({"text": [f"batch {batch} text {i}" for i in range(400)], "label": ["a", "b"] * 200})
        rows.to_csv(store.workspace.landing / f"{batch}.csv", index=False)
        store.ingest()
        tests.append(set(split_frame(store.head().load(), DataConfig())["test"]["text"]))
    assert tests[0] < tests[1] < tests[2]
