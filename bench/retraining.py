"""Benchmark: new file -> registered challenger, and a "no new data" retraining run, on a real Prefect server.

Starts `prefect server start` and `pipeline deploy` (default configuration: packaged MiniLM, 3 epochs) on a
fresh workspace, trains the first model on demo batches 1 and 2 through the `training` deployment, then:

1. runs `retraining` with nothing new (the hourly schedule's common case);
2. drops demo batch 3 into the landing zone and runs `retraining` at once (what the schedule or the
   pipeline.data.arrived event does), timing file-on-disk -> version registered with alias challenger.

    PYTHONPATH=src:. python bench/retraining.py [--rows 1200] [--out bench/out/retraining]

Prints one JSON object; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "src"), str(Path(__file__).resolve().parents[1])]

from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.data.demo import generate_demo_rows, write_demo_files  # noqa: E402
from pipeline.data.readers import normalise_text  # noqa: E402
from pipeline.validation.steps import load_test_texts  # noqa: E402
from pipeline.workspace import Workspace  # noqa: E402
from tests.integration.prefect_stack import PrefectStack  # noqa: E402

POOL = "pipeline-bench"


def write_batch_3(workspace: Workspace, rows: int) -> tuple[Path, int]:
    """Demo batch 3 without the rows that repeat a text of the frozen test split (the contract refuses
    a file holding any); returns the path and how many rows were left out."""
    from pipeline.data.store import DataStore

    frame = generate_demo_rows(rows, seed=3)
    test_texts = load_test_texts(DataStore(workspace, PipelineConfig().data).head(), PipelineConfig())
    keep = ~frame["text"].map(normalise_text).isin(test_texts)
    staging = workspace.root / "demo_batch_3.tsv.part"
    frame[keep].to_csv(staging, index=False, sep="\t")
    path = workspace.landing / "demo_batch_3.tsv"
    staging.rename(path)  # lands atomically, as a finished upload would
    return path, int((~keep).sum())


def task_seconds(client, flow_run_ids) -> dict[str, float]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(flow_run_ids))))
    return {r.name.rsplit("-", 1)[0]: round(r.total_run_time.total_seconds(), 2) for r in runs}


def describe(client, flow_run, wall: float) -> dict:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id]))
    )
    waited = (flow_run.start_time - flow_run.expected_start_time).total_seconds()
    return {
        "flow_run": flow_run.name,
        "state": flow_run.state.name,
        "message": flow_run.state.message,
        "wall_seconds": round(wall, 2),
        "run_seconds": round(flow_run.total_run_time.total_seconds(), 2),
        "start_delay_seconds": round(waited, 2),
        "tasks": task_seconds(client, [flow_run.id, *[c.id for c in children]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1200, help="rows per demo batch")
    parser.add_argument("--out", type=Path, default=Path("bench/out/retraining"))
    args = parser.parse_args()

    from mlflow import MlflowClient
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    root = args.out.resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    workspace = Workspace(root / "ws").ensure()
    stack = PrefectStack.start_server(root, workspace.root)
    results: dict = {"rows_per_batch": args.rows}
    try:
        stack.start_serve(root, ["--set", f"deployment.work_pool={POOL}"])
        with temporary_settings({PREFECT_API_URL: stack.api_url}), get_client(sync_client=True) as client:
            stack.wait_for_worker(client, POOL)
            registry = MlflowClient(workspace.default_tracking_uri(), workspace.default_tracking_uri())

            write_demo_files(workspace.landing, (1, 2), args.rows)
            start = time.perf_counter()
            first = run_deployment("training/training", timeout=3600, poll_interval=1)
            results["initial_training"] = describe(client, first, time.perf_counter() - start)

            start = time.perf_counter()
            idle = run_deployment("retraining/retraining", timeout=600, poll_interval=1)
            results["no_new_data"] = describe(client, idle, time.perf_counter() - start)

            path, left_out = write_batch_3(workspace, args.rows)
            landed = time.perf_counter()
            fresh = run_deployment("retraining/retraining", timeout=3600, poll_interval=1)
            results["new_file_to_challenger"] = describe(client, fresh, time.perf_counter() - landed)
            results["new_file_to_challenger"]["batch_3_rows_left_out_for_test_leakage"] = left_out
            version = registry.get_model_version_by_alias("text-classifier", "challenger")
            logged = registry.get_logged_model(version.model_id or version.source.removeprefix("models:/"))
            results["new_file_to_challenger"]["challenger"] = {
                "version": version.version,
                "snapshot_id": version.tags.get("snapshot_id"),
                "metrics": {metric.key: metric.value for metric in logged.metrics},
            }
    finally:
        stack.close()
    (root / "retraining.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
