"""What counts as new data for retraining, and the retraining section of the configuration."""

import shutil

import pytest

from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.data.demo import write_demo_files
from pipeline.data.store import DataStore
from pipeline.ops.retraining import decide_retraining, measure_new_data
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws").ensure()


def config_for(workspace: Workspace, **retraining) -> PipelineConfig:
    return PipelineConfig.model_validate({"workspace": str(workspace.root), "retraining": retraining})


def test_empty_workspace_has_no_new_data(workspace):
    new = measure_new_data(config_for(workspace), workspace)
    assert (new.rows, new.head_snapshot, new.pending_files) == (0, None, [])
    decision = decide_retraining(new, 1)
    assert not decision.train and decision.reason == "no new data: nothing pending"


def test_pending_rows_are_counted_without_ingesting(workspace):
    write_demo_files(workspace.landing, (1, 2), rows_per_batch=40)
    config = config_for(workspace)
    new = measure_new_data(config, workspace)
    assert new.pending_rows == 80 and len(new.pending_files) == 2 and new.untrained_rows == 0
    assert decide_retraining(new, 80).train
    too_few = decide_retraining(new, 81)
    assert not too_few.train and too_few.reason.startswith("no new data") and "min_new_rows=81" in too_few.reason
    assert DataStore(workspace, config.data).read_ledger()["head"] is None  # nothing was ingested


def test_ingested_rows_are_new_until_a_training_used_their_snapshot(workspace):
    config = config_for(workspace)
    store = DataStore(workspace, config.data)
    write_demo_files(workspace.landing, (1,), rows_per_batch=40)
    first = store.ingest().snapshot_id

    never_trained = measure_new_data(config, workspace, lookup_trained=False)
    assert (never_trained.pending_rows, never_trained.untrained_rows) == (0, 40)
    trained = measure_new_data(config, workspace, trained_snapshot=first)
    assert trained.rows == 0
    assert decide_retraining(trained, 1).reason == f"no new data: nothing pending; snapshot {first} is already trained"

    write_demo_files(workspace.landing, (3,), rows_per_batch=25)
    store.ingest()
    since_first = measure_new_data(config, workspace, trained_snapshot=first)
    assert since_first.untrained_rows == 25 and [p.split("/")[-1] for p in since_first.untrained_files] == [
        "demo_batch_3.tsv"
    ]


def test_the_registry_tells_which_snapshot_was_trained_last(workspace):
    """Without a tracking store nothing was trained: every ingested row is new."""
    config = config_for(workspace)
    write_demo_files(workspace.landing, (1,), rows_per_batch=30)
    DataStore(workspace, config.data).ingest()
    new = measure_new_data(config, workspace)
    assert new.trained_snapshot is None and new.untrained_rows == 30


def test_an_unreadable_pending_file_makes_the_run_train_to_report_it(workspace):
    shutil.copy(FIXTURES / "missing_label_column.csv", workspace.landing / "broken.csv")
    new = measure_new_data(config_for(workspace), workspace)
    assert new.rows == 0 and new.unreadable_files[0]["uri"].endswith("broken.csv")
    decision = decide_retraining(new, 1000)
    assert decision.train and "cannot be read" in decision.reason


def test_retraining_config_defaults_and_bounds():
    config = PipelineConfig()
    assert (
        config.retraining.min_new_rows,
        config.retraining.schedule_cron,
        config.deployment.collision_strategy,
        config.notifications.webhook_url,
    ) == (1, "0 * * * *", "ENQUEUE", None)
    assert load_config(overrides=["retraining.schedule_cron=*/15 9-17 * * 1-5"], environ={}).retraining.schedule_cron
    for bad, key in [
        ("retraining.min_new_rows=0", "min_new_rows"),
        ("retraining.schedule_cron=hourly", "schedule_cron"),
        ("notifications.webhook_url=mailto:ops@example.com", "webhook_url"),
        ("deployment.collision_strategy=DROP", "collision_strategy"),
    ]:
        with pytest.raises(ConfigError, match=key):
            load_config(overrides=[bad], environ={})
    schema = PipelineConfig.model_json_schema()["$defs"]["RetrainingConfig"]["properties"]
    assert schema["min_new_rows"]["minimum"] == 1 and schema["min_new_rows"]["description"]
