"""Stage boundaries survive crashes: checkpoints, the retraining decision, the run lock."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from pipeline.config import load_config
from pipeline.run_lock import RunInProgressError, hold_run_lock
from pipeline.training.checkpoints import load_checkpoint, load_newest_valid, save_checkpoint
from pipeline.training.steps import confine_to_workspace
from pipeline.workspace import Workspace
from tests.unit.registry_db import fresh_registry_uri


def state(value: float) -> dict:
    return {"weights": torch.full((2,), value), "counts": np.arange(3), "step": int(value), "history": [{"loss": 0.5}]}


def test_checkpoints_load_with_weights_only_and_keep_numpy_values(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"k": 1}, state(1.0), keep=3)
    loaded = load_checkpoint(path, {"k": 1})
    assert isinstance(loaded["counts"], np.ndarray) and loaded["counts"].tolist() == [0, 1, 2]
    assert loaded["weights"].tolist() == [1.0, 1.0] and loaded["history"] == [{"loss": 0.5}]
    torch.load(path / "state.pt", weights_only=True)  # plain tensors and values only


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = save_checkpoint(tmp_path, 1, {"k": 1}, state(1.0), keep=3)

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"payload": Exploit()}, path / "state.pt", pickle_module=pickle)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path, {"k": 1})
    assert not (tmp_path / "pwned").exists()


def test_the_newest_valid_checkpoint_is_used_and_a_corrupt_one_skipped(tmp_path, caplog):
    save_checkpoint(tmp_path / "run-a", 2, {"k": 1}, state(2.0), keep=3)
    newest = save_checkpoint(tmp_path / "run-b", 4, {"k": 1}, state(4.0), keep=3)
    (newest / "state.pt").write_bytes((newest / "state.pt").read_bytes()[:100])  # a torn write
    path, loaded = load_newest_valid([tmp_path / "run-a", tmp_path / "run-b"], {"k": 1})
    assert path.name == "step-00000002" and loaded["step"] == 2
    assert "skipping checkpoint" in caplog.text and "step-00000004" in caplog.text
    assert load_newest_valid([tmp_path / "nothing"], {"k": 1}) == (None, None)


def test_resume_from_is_confined_to_the_workspace(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    inside = workspace.checkpoints / "m" / "k" / "step-00000001"
    assert confine_to_workspace(workspace, str(inside)) == inside.resolve()
    assert confine_to_workspace(workspace, "checkpoints/m") == (workspace.root / "checkpoints/m").resolve()
    for outside in ("/etc/passwd", str(tmp_path / "elsewhere"), "../../x", "checkpoints/../../x"):
        with pytest.raises(ValueError, match="outside the workspace"):
            confine_to_workspace(workspace, outside)
    assert confine_to_workspace(workspace, None) is None


def test_retraining_trains_exactly_when_the_newest_snapshot_has_no_version(tmp_path, migrated_registry_db, monkeypatch):
    from pipeline.data.demo import write_demo_files
    from pipeline.data.store import DataStore
    from pipeline.ops.retraining import decide_retraining, measure_new_data

    uri = fresh_registry_uri(migrated_registry_db, tmp_path)
    config = load_config(
        overrides=[f"workspace={tmp_path / 'ws'}", f"tracking.tracking_uri={uri}", "registry.model_name=m"]
    )
    workspace = Workspace(tmp_path / "ws").ensure()
    write_demo_files(workspace.landing, (1,), 40)
    head = DataStore(workspace, config.data).ingest().snapshot_id
    client = MlflowClient(uri, registry_uri=uri)
    experiment = client.create_experiment("text-classification", artifact_location=(tmp_path / "a").as_uri())
    # A run that finished on the head snapshot but registered nothing (killed after logging the model).
    run = client.create_run(experiment, tags={"snapshot_id": head, "registered_model": "m"})
    client.set_terminated(run.info.run_id, "FINISHED")
    assert decide_retraining(measure_new_data(config, workspace), 1).train
    client.create_registered_model("m")
    client.create_model_version("m", (tmp_path / "w").as_uri(), run_id=run.info.run_id, tags={"snapshot_id": head})
    decision = decide_retraining(measure_new_data(config, workspace), 1)
    assert not decision.train and decision.reason.startswith("no new data")


def test_a_second_run_of_the_same_model_is_refused_while_the_first_holds_the_lock(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from pipeline.run_lock import hold_run_lock
        from pipeline.workspace import Workspace
        with hold_run_lock(Workspace.resolve({str(workspace.root)!r}), "m", what="first run"):
            print("held", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInProgressError, match=f"pid {holder.pid}.*first run"):
            with hold_run_lock(workspace, "m", wait_s=0.5):
                pass
        with hold_run_lock(workspace, "other-model"):  # another model is independent
            pass
    finally:
        holder.kill()  # kill -9: the kernel drops the lock with the process
        holder.wait()
    with hold_run_lock(workspace, "m", wait_s=5), hold_run_lock(workspace, "m"):  # free again, and re-entrant
        pass
