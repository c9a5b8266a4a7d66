"""Links between a Prefect flow run and what it made in MLflow: UI addresses and tags both ways.

MLflow runs and registered versions carry the Prefect flow run's id and address as tags
(``prefect.flow_run_id``, ``prefect.flow_run_url``); the addresses of the MLflow run, logged model and
registered version are built here for Prefect link artifacts and the command line. No Prefect import.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

logger = logging.getLogger(__name__)

FLOW_RUN_ID_TAG, FLOW_RUN_URL_TAG = "prefect.flow_run_id", "prefect.flow_run_url"


def mlflow_ui_url(ui_url: str | None, tracking_uri: str | None) -> str | None:
    """The MLflow UI address: ``tracking.ui_url`` when set, else an http(s) tracking URI, else None (a local
    SQLite store has no UI until someone starts ``mlflow ui`` on it)."""
    if ui_url:
        return ui_url.rstrip("/")
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None


def mlflow_links(
    base: str | None,
    experiment_id: str | None = None,
    run_id: str | None = None,
    model_id: str | None = None,
    model_name: str | None = None,
    version: str | None = None,
) -> dict:
    """``{mlflow_run, mlflow_logged_model, mlflow_model_version}`` addresses in the MLflow 3 UI (those known)."""
    if not base:
        return {}
    links = {}
    if experiment_id and run_id:
        links["mlflow_run"] = f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    if experiment_id and model_id:
        links["mlflow_logged_model"] = f"{base}/#/experiments/{experiment_id}/models/{model_id}"
    if model_name and version:
        links["mlflow_model_version"] = f"{base}/#/models/{quote(model_name, safe='')}/versions/{version}"
    return links


def flow_run_tags(flow_run_id: str | None, flow_run_url: str | None) -> dict[str, str]:
    tags = {}
    if flow_run_id:
        tags[FLOW_RUN_ID_TAG] = str(flow_run_id)
    if flow_run_url:
        tags[FLOW_RUN_URL_TAG] = flow_run_url
    return tags


def tag_run(mlflow_client, run_id: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        mlflow_client.set_tag(run_id, key, value)


def tag_version(mlflow_client, model_name: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
