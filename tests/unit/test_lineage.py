"""The training run records which data trained it: snapshot id, manifest and the file list (MLflow)."""

import json
import shutil

from pipeline.config import load_config
from pipeline.data.store import DataStore
from pipeline.registry import steps as registry_steps
from pipeline.registry import tracking as registry
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


def test_start_tracking_logs_snapshot_manifest_with_file_list(workspace_dir, tmp_path):
    config = load_config(overrides=[f"workspace={workspace_dir}"])
    workspace = Workspace.resolve(config.workspace).ensure()
    store = DataStore(workspace, config.data)
    shutil.copy(FIXTURES / "good.csv", workspace.landing / "first.csv")
    store.ingest()
    (workspace.landing / "second.csv").write_text("text,label\nsomething new,billing\nand more,shipping\n")
    snapshot_id = store.ingest().snapshot_id

    tracking = registry_steps.start_tracking(config, workspace, snapshot_id)
    client = registry.client(tracking.tracking_uri)
    run = client.get_run(tracking.run_id)
    assert run.data.tags["snapshot_id"] == snapshot_id
    path = client.download_artifacts(tracking.run_id, "data/manifest.json", str(tmp_path))
    manifest = json.loads(open(path).read())
    assert manifest["snapshot_id"] == snapshot_id and manifest["parent"]
    assert [f["uri"].rsplit("/", 1)[-1] for f in manifest["files"]] == ["first.csv", "second.csv"]
    assert all(len(f["sha256"]) == 64 and f["rows"] for f in manifest["files"])
    client.set_terminated(tracking.run_id)
