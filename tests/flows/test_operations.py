"""What an operator sees of a training run: the pipeline's log lines and a progress artifact in the Prefect run,
links both ways between the Prefect run and MLflow, and MLflow 3 metrics on the logged model."""

import mlflow
from mlflow import MlflowClient

from pipeline.data.demo import write_demo_files
from pipeline.flows.training import training_flow
from pipeline.registry.links import FLOW_RUN_ID_TAG
from pipeline.workspace import Workspace

MLFLOW_UI = "http://mlflow.example:5000"


def flow_run_logs(client, flow_run_id) -> list:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs are sent in batches
    return client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def artifacts_of(client, flow_run_id) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    runs = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    found = client.read_artifacts(artifact_filter=runs)
    return {artifact.key: artifact for artifact in found if artifact.key}


def test_training_run_shows_logs_progress_and_links_both_ways(tiny_config):
    from prefect import get_client

    tiny_config.tracking.ui_url = MLFLOW_UI
    write_demo_files(Workspace.resolve(tiny_config.workspace).ensure().landing, (1,), rows_per_batch=300)
    result = training_flow(config=tiny_config)
    links = result["links"]
    flow_run_id = links["prefect_flow_run_id"]
    assert flow_run_id

    with get_client(sync_client=True) as client:
        logs = flow_run_logs(client, flow_run_id)
        artifacts = artifacts_of(client, flow_run_id)
    pipeline_lines = [log for log in logs if log.name.startswith("pipeline.")]
    assert any(log.name == "pipeline.training.loop" and "epoch 1" in log.message for log in pipeline_lines), [
        log.name for log in logs
    ]
    sent = [(log.name, log.message, log.timestamp) for log in pipeline_lines]
    assert len(set(sent)) == len(sent), "a record was sent twice"

    progress = artifacts["training-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0

    experiment = MlflowClient(result["tracking_uri"]).get_run(result["run_id"]).info.experiment_id
    assert links["mlflow_run"] == f"{MLFLOW_UI}/#/experiments/{experiment}/runs/{result['run_id']}"
    assert links["mlflow_model_version"] == f"{MLFLOW_UI}/#/models/tiny-classifier/versions/{result['model_version']}"
    assert links["mlflow_logged_model"].startswith(f"{MLFLOW_UI}/#/experiments/{experiment}/models/m-")
    for key, url in (
        ("mlflow-run", links["mlflow_run"]),
        ("mlflow-model-version", links["mlflow_model_version"]),
        ("mlflow-logged-model", links["mlflow_logged_model"]),
    ):
        assert f"({url})" in artifacts[key].data  # a link artifact is markdown: [text](url)

    # ...and back: the MLflow run and the registered version name the Prefect flow run.
    mlflow.set_tracking_uri(result["tracking_uri"])
    registry = MlflowClient(result["tracking_uri"])
    assert registry.get_run(result["run_id"]).data.tags[FLOW_RUN_ID_TAG] == flow_run_id
    version = registry.get_model_version("tiny-classifier", result["model_version"])
    assert version.tags[FLOW_RUN_ID_TAG] == flow_run_id

    # MLflow 3: the test metrics live on the logged model, tied to the evaluation data set; no tag copies.
    assert not [key for key in version.tags if key.startswith("metric.")]
    models = registry.search_logged_models(experiment_ids=[experiment])
    assert result["model_id"] and version.source == f"models:/{result['model_id']}"
    logged = next(model for model in models if model.model_id == result["model_id"])
    metrics = {metric.key: metric for metric in logged.metrics}
    assert abs(metrics["macro_f1"].value - result["metrics"]["macro_f1"]) < 1e-9
    assert metrics["accuracy"].dataset_name == "test-split" and metrics["accuracy"].dataset_digest
    inputs = registry.get_run(result["run_id"]).inputs.dataset_inputs
    contexts = {i.dataset.name: {t.value for t in i.tags if t.key == "mlflow.data.context"} for i in inputs}
    assert contexts["test-split"] == {"evaluation"}
    test_split = next(i.dataset for i in inputs if i.dataset.name == "test-split")
    assert metrics["accuracy"].dataset_digest == test_split.digest
