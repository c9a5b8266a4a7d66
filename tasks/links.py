"""Links both ways between the Prefect flow run and MLflow: tags on the MLflow side, link artifacts here."""

from __future__ import annotations

import logging

from prefect import task
from prefect.artifacts import create_link_artifact
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_UI_URL

from pipeline.config import PipelineConfig
from pipeline.registry import links
from pipeline.registry import tracking as registry
from pipeline.results import Registration, TrackingRun

logger = logging.getLogger(__name__)

LINK_TEXTS = {
    "mlflow_run": "MLflow run",
    "mlflow_logged_model": "MLflow logged model",
    "mlflow_model_version": "MLflow registered version",
}


def current_flow_run() -> tuple[str | None, str | None]:
    """(id, UI address) of the flow run this code runs in; the address is None without a UI."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None, None
    flow_run_id = str(context.flow_run.id)
    base = PREFECT_UI_URL.value()
    return flow_run_id, f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None


def publish_links(found: dict) -> None:
    """One link artifact per address (keys ``mlflow-run``, ``mlflow-logged-model``, ``mlflow-model-version``)."""
    for name, url in found.items():
        create_link_artifact(
            url,
            link_text=LINK_TEXTS.get(name, name),
            key=name.replace("_", "-"),
            description=LINK_TEXTS.get(name, name),
        )


def link_tracking_run(config: PipelineConfig, tracking: TrackingRun) -> dict:
    """Tag the MLflow run with this flow run and publish its link; returns the links known so far.

    Never raises: a missing link must not fail (or retry, opening a second MLflow run) the step that calls it.
    """
    try:
        flow_run_id, flow_run_url = current_flow_run()
        client = registry.client(tracking.tracking_uri)
        links.tag_run(client, tracking.run_id, links.flow_run_tags(flow_run_id, flow_run_url))
        base = links.mlflow_ui_url(config.tracking.ui_url, tracking.tracking_uri)
        found = links.mlflow_links(base, tracking.experiment_id, tracking.run_id)
        publish_links(found)
    except Exception as exc:
        logger.warning("could not link MLflow run %s to this flow run: %s", tracking.run_id, exc)
        return {}
    return found


@task(name="link-runs")
def link_runs(config: PipelineConfig, tracking: TrackingRun, registered: Registration) -> dict:
    """Tag the registered version with this flow run and publish links to the logged model and version.

    Returns ``{prefect_flow_run, prefect_flow_run_id, mlflow_run, mlflow_logged_model, mlflow_model_version}``
    (the addresses known: none of MLflow's without a UI address, see ``tracking.ui_url``). Never raises: the
    version is registered by then, and a missing link must not fail the run.
    """
    flow_run_id, flow_run_url = current_flow_run()
    base = links.mlflow_ui_url(config.tracking.ui_url, tracking.tracking_uri)
    found = {
        "prefect_flow_run_id": flow_run_id,
        "prefect_flow_run": flow_run_url,
        **links.mlflow_links(base, tracking.experiment_id, tracking.run_id),
    }
    try:
        client = registry.client(tracking.tracking_uri)
        links.tag_version(
            client, registered.model_name, registered.model_version, links.flow_run_tags(flow_run_id, flow_run_url)
        )
        made = links.mlflow_links(
            base, tracking.experiment_id, None, registered.model_id, registered.model_name, registered.model_version
        )
        found.update(made)
        publish_links(made)
    except Exception as exc:
        logger.warning("could not link version %s to this flow run: %s", registered.model_version, exc)
    return found
