"""The deployments, built from one ``PipelineConfig``: what ``pipeline deploy`` registers.

- ``retraining``: on ``retraining.schedule_cron`` and on the ``pipeline.data.arrived`` event of this workspace;
- ``training``: manual, the typed configuration as its parameter form;
- ``ingestion``: manual, ingests the landing zone and announces a new snapshot;
- ``batch-inference``: on ``scoring.schedule_cron`` and on the ``pipeline.inbox.arrived`` event of this workspace,
  scores new files of the inbox with the champion.

``deployments/prefect.yaml`` declares the same deployments for ``prefect deploy`` (a unit test keeps them
in step). Entry points are module paths, so a worker runs them wherever the package is importable.
"""

from __future__ import annotations

import logging
import re

from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron

from pipeline.config import PipelineConfig, run_options_of
from pipeline.flows.batch_inference import batch_inference_flow
from pipeline.flows.ingestion import ingestion_flow
from pipeline.flows.retraining import manual_training_flow, retraining_flow
from pipeline.tasks.events import DATA_ARRIVED, SNAPSHOT_RESOURCE_PREFIX
from pipeline.tasks.scoring import INBOX_ARRIVED
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)

RETRAINING, TRAINING, INGESTION = "retraining", "training", "ingestion"
BATCH_INFERENCE = "batch-inference"
MODEL_LIMITED = (RETRAINING, TRAINING)
ENTRYPOINTS = {
    RETRAINING: "pipeline.flows.retraining.retraining_flow",
    TRAINING: "pipeline.flows.retraining.manual_training_flow",
    INGESTION: "pipeline.flows.ingestion.ingestion_flow",
    BATCH_INFERENCE: "pipeline.flows.batch_inference.batch_inference_flow",
}


# Titles of the run form's fields in the Prefect UI (the flows' docstrings give the descriptions).
FORM_TITLES = {
    "data_paths": "Data files",
    "base_model": "Base model",
    "method": "Fine-tuning method",
    "epochs": "Epochs",
    "learning_rate": "Learning rate",
    "promote": "Promote to champion",
    "config": "Advanced settings",
}


def title_run_form(deployment: RunnerDeployment) -> RunnerDeployment:
    """Give the top-level form fields readable titles (Prefect titles them with the parameter's name)."""
    for name, prop in deployment._parameter_openapi_schema.properties.items():
        if name in FORM_TITLES:
            prop["title"] = FORM_TITLES[name]
    return deployment


def form_defaults(deployment: RunnerDeployment, config: PipelineConfig) -> RunnerDeployment:
    """Pre-fill the run form's top-level fields with the configured values (not an empty "None").

    They are the schema's defaults, which the UI's form shows and sends, not deployment parameters: a run
    started through the API with only ``config`` (or on a schedule) is then decided by that ``config``.
    """
    fields = deployment._parameter_openapi_schema.properties
    for name, value in run_options_of(config).items():
        if name in fields:
            fields[name]["default"] = value
    return deployment


def model_limit_name(model_name: str) -> str:
    """Name of the global concurrency limit shared by the training and retraining deployments of a model."""
    return "pipeline-model-" + re.sub(r"[/%&<>]", "_", model_name)


def pinned_config(config: PipelineConfig) -> PipelineConfig:
    """The configuration with an absolute workspace: deployed runs start in a temporary folder."""
    return config.model_copy(update={"workspace": str(Workspace.resolve(config.workspace).root)})


def data_arrived_trigger(workspace: Workspace) -> DeploymentEventTrigger:
    return DeploymentEventTrigger(
        name="new data in this workspace",
        expect={DATA_ARRIVED},
        match={"prefect.resource.id": f"{SNAPSHOT_RESOURCE_PREFIX}*", "pipeline.workspace": str(workspace.root)},
    )


def deployment_parameters(config: PipelineConfig) -> dict:
    """The ``config`` parameter of the deployments, with no secret in it: a literal webhook URL is handed to
    the serving process as ``$PIPELINE_WEBHOOK_URL`` (its flow runs inherit it) and the parameter says
    ``env:PIPELINE_WEBHOOK_URL``. Workers of other pools need that variable in their environment."""
    import os

    from pipeline.secrets import WEBHOOK_ENV, redact_url

    params = config.model_dump(mode="json")
    webhook = config.notifications.webhook_url
    if webhook and not webhook.startswith("env:"):
        os.environ[WEBHOOK_ENV] = webhook
        params["notifications"]["webhook_url"] = f"env:{WEBHOOK_ENV}"
        logger.info("webhook %s passed to deployed runs as $%s, not as a parameter", redact_url(webhook), WEBHOOK_ENV)
    tracking = params["tracking"].get("tracking_uri")
    if tracking:
        from pipeline.secrets import redact_credentials

        if redact_credentials(tracking) != tracking:
            raise ValueError(
                "tracking.tracking_uri carries credentials; give them to MLflow through "
                "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD instead of the URI"
            )
    return params


def run_environment(config: PipelineConfig, workspace: Workspace) -> dict[str, str]:
    """Environment of a deployed run: its workspace, and heartbeats (a run whose heartbeats stop is marked
    Crashed by the crash-detection automation)."""
    return {
        "PIPELINE_HOME": str(workspace.root),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(config.deployment.heartbeat_seconds),
    }


def inbox_trigger(workspace: Workspace) -> DeploymentEventTrigger:
    """``pipeline.inbox.arrived`` for this workspace (any resource id): whatever drops files may emit it."""
    return DeploymentEventTrigger(
        name="new files in the inbox", expect={INBOX_ARRIVED}, match={"pipeline.workspace": str(workspace.root)}
    )


def build_deployments(config: PipelineConfig) -> dict[str, RunnerDeployment]:
    """``{name: RunnerDeployment}``; their default parameters are ``config`` (workspace made absolute)."""
    config = pinned_config(config)
    workspace = Workspace.resolve(config.workspace)
    ops = config.retraining
    common = dict(
        parameters={"config": deployment_parameters(config)},
        enforce_parameter_schema=True,
        job_variables={"env": run_environment(config, workspace)},
        entrypoint_type=EntrypointType.MODULE_PATH,
        tags=["pipeline", f"model:{config.registry.model_name}"],
    )
    built = {
        RETRAINING: retraining_flow.to_deployment(
            name=RETRAINING,
            schedules=[Cron(ops.schedule_cron, timezone=ops.timezone)],
            triggers=[data_arrived_trigger(workspace)] if ops.trigger_on_new_data else [],
            description=f"Retrain {config.registry.model_name} when at least {ops.min_new_rows} new labeled rows "
            "arrived "
            f"(schedule '{ops.schedule_cron}' {ops.timezone}, and on event {DATA_ARRIVED}).",
            **common,
        ),
        TRAINING: manual_training_flow.to_deployment(
            name=TRAINING,
            description="Train, evaluate and register a model now, with the parameters of the form.",
            **common,
        ),
        INGESTION: ingestion_flow.to_deployment(
            name=INGESTION,
            description=f"Ingest new labeled files under the data contract; a new snapshot emits "
            f"{DATA_ARRIVED}, which starts retraining.",
            **common,
        ),
        BATCH_INFERENCE: batch_inference_flow.to_deployment(
            name=BATCH_INFERENCE,
            schedules=[Cron(config.scoring.schedule_cron, timezone=ops.timezone)]
            if config.scoring.schedule_cron
            else [],
            triggers=[inbox_trigger(workspace)] if config.scoring.trigger_on_inbox_event else [],
            description=f"Score new files of the inbox with models:/{config.registry.model_name}@champion; drift "
            "past an "
            f"error threshold emits pipeline.drift.detected.",
            **common,
        ),
    }
    for name, deployment in built.items():
        deployment.entrypoint = ENTRYPOINTS[
            name
        ]  # the flow object itself: with_options copies keep the base's function
        form_defaults(title_run_form(deployment), config)
    return built
