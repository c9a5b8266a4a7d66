"""The retraining flow: train only when enough new labeled data arrived since the last training.

Deployed on a cron schedule and on the ``pipeline.data.arrived`` event (deployments/). ``manual_training_flow``
is the training flow with failure notification: what the ``training`` deployment runs.
"""

from __future__ import annotations

from prefect import flow
from prefect.states import Completed

from pipeline.config import PipelineConfig
from pipeline.flows.training import training_flow
from pipeline.tasks.data import prepare_workspace
from pipeline.tasks.guard import one_run_per_model
from pipeline.tasks.logs import forward_pipeline_logs
from pipeline.tasks.notifications import report_failure
from pipeline.tasks.ops import check_new_data

manual_training_flow = training_flow.with_options(on_failure=[report_failure], on_crashed=[report_failure])


@flow(
    name="retraining",
    log_prints=True,
    validate_parameters=True,
    on_failure=[report_failure],
    on_crashed=[report_failure],
    on_running=[forward_pipeline_logs],
)
def retraining_flow(config: PipelineConfig = PipelineConfig()):
    """Retrain when at least ``retraining.min_new_rows`` new rows arrived; otherwise finish at once ("no new data").

    Training runs as a subflow: it ingests and validates the new files itself and warm-starts from the
    champion when ``model.warm_start`` is set.

    Args:
        config: Settings: every configuration key, with its embedded default.
    """
    workspace = prepare_workspace(config)
    with one_run_per_model(config, workspace, what="retraining flow"):
        check = check_new_data(config, workspace)
        if not check.train:
            print(check.reason)
            return Completed(message=check.reason, data={"status": "skipped", **check.to_dict()})
        result = training_flow(config=config)
    message = (
        f"registered {result['model_name']} version {result['model_version']} "
        f"{result['aliases']} on snapshot {result['snapshot_id']} ({check.reason})"
    )
    print(message)
    return Completed(message=message, data={"status": "trained", **check.to_dict(), "training": result})
