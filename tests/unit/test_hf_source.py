"""``hf:NAME[:CONFIG]`` sources, tested with local folders (no hub is reachable here)."""

import pytest

from pipeline.config import DataConfig
from pipeline.data.readers import IngestionError, read_labeled_file
from pipeline.data.sources import parse_hf_uri
from pipeline.data.store import DataStore
from pipeline.workspace import Workspace

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def saved_dataset(tmp_path):
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "sentiment": datasets.ClassLabel(names=["negative", "positive"])}
    )
    train = datasets.Dataset.from_dict(
        {"sentence": ["good film", "bad film", "no label"], "sentiment": [1, 0, -1]}, features=features
    )
    extra = datasets.Dataset.from_dict({"sentence": ["fine film"], "sentiment": [1]}, features=features)
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": train, "validation": extra}).save_to_disk(str(folder))
    return folder


def test_parse_hf_uri():
    assert parse_hf_uri("hf:glue:sst2") == ("glue", "sst2")
    assert parse_hf_uri("hf:/data/folder") == ("/data/folder", None)
    with pytest.raises(IngestionError, match="bad_source"):
        parse_hf_uri("hf:")


def test_saved_to_disk_dataset_with_class_labels(saved_dataset):
    config = DataConfig(text_column="sentence", label_column="sentiment")
    frame = read_labeled_file(f"hf:{saved_dataset}", config)
    assert frame["text"].tolist() == ["good film", "bad film", "no label"]
    assert frame["label"].tolist() == ["positive", "negative", None]
    joined = read_labeled_file(f"hf:{saved_dataset}", config.model_copy(update={"hf_split": "train+validation"}))
    assert len(joined) == 4
    with pytest.raises(IngestionError, match="missing_split"):
        read_labeled_file(f"hf:{saved_dataset}", config.model_copy(update={"hf_split": "test"}))


def test_folder_of_files_with_configs_through_the_datastore(tmp_path):
    folder = tmp_path / "intents"
    (folder / "en").mkdir(parents=True)
    (folder / "de").mkdir()
    (folder / "en" / "train.csv").write_text("text,label\nhello,greet\nbye,leave\n")
    (folder / "de" / "train.csv").write_text("text,label\nhallo,greet\ntschuess,leave\nservus,greet\n")
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files:\n  - split: train\n"
        "    path: en/*.csv\n- config_name: de\n  data_files:\n  - split: train\n"
        "    path: de/*.csv\n---\n"
    )
    store = DataStore(Workspace(tmp_path / "ws"), DataConfig())
    result = store.ingest([f"hf:{folder}:de"])
    assert result.new_files == [f"hf:{folder}:de"] and result.rows_added == 3
    assert sorted(store.head().load()["text"]) == ["hallo", "servus", "tschuess"]
    again = store.ingest([f"hf:{folder}:de"])
    assert again.new_files == [] and "already accepted" in again.skipped_files[0]["reason"]
    assert store.pending([f"hf:{folder}:de"]) == []
    assert [p["uri"] for p in store.pending([f"hf:{folder}:en"])] == [f"hf:{folder}:en"]
    (folder / "de" / "train.csv").write_text("text,label\nhallo,greet\ntschuess,leave\nservus,greet\nmoin,greet\n")
    assert len(store.pending([f"hf:{folder}:de"])) == 1, "changed content is new"


def test_missing_dataset_is_quarantined_with_a_report(tmp_path):
    store = DataStore(Workspace(tmp_path / "ws"), DataConfig())
    result = store.ingest([f"hf:{tmp_path / 'nothing-here'}"])
    (item,) = result.quarantined
    assert item["rule"] in {"not_found", "unreadable"}
    assert open(item["report"]).read().startswith("# Quarantined")
    assert store.read_ledger()["events"][-1]["status"] == "quarantined"
