"""Pieces of what an operator sees: link addresses, progress throttling, log forwarding scope, the CLI's links
and the renamed deployment command."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.common import link_lines
from pipeline.registry import links

ROOT = Path(__file__).resolve().parents[2]


def test_mlflow_ui_address_comes_from_the_setting_or_an_http_tracking_server():
    assert links.mlflow_ui_url("http://ui:5000/", "sqlite:////tmp/m.db") == "http://ui:5000"
    assert links.mlflow_ui_url(None, "https://mlflow.internal/") == "https://mlflow.internal"
    assert links.mlflow_ui_url(None, "sqlite:////tmp/m.db") is None
    assert links.mlflow_links(None, "1", "abc") == {}


def test_mlflow_links_point_at_the_mlflow_3_ui_pages():
    found = links.mlflow_links("http://ui", "7", "run1", "m-42", "team/intents", "3")
    assert found == {
        "mlflow_run": "http://ui/#/experiments/7/runs/run1",
        "mlflow_logged_model": "http://ui/#/experiments/7/models/m-42",
        "mlflow_model_version": "http://ui/#/models/team%2Fintents/versions/3",
    }


def test_flow_run_tags_leave_out_what_is_unknown():
    assert links.flow_run_tags("id-1", None) == {links.FLOW_RUN_ID_TAG: "id-1"}
    assert links.flow_run_tags(None, None) == {}


def test_progress_is_published_every_few_percent_and_once_at_the_end(monkeypatch):
    from pipeline.tasks import logs

    published = []
    monkeypatch.setattr(logs, "create_progress_artifact", lambda p, key, description: published.append(p) or "id")
    monkeypatch.setattr(logs, "update_progress_artifact", lambda i, p, description: published.append(p))
    reporter = logs.ProgressReporter(every=0.05, min_interval_s=0.0)
    for step in range(1, 1001):
        reporter(step, 1000)
    assert published[0] == 0.1 and published[-1] == 100.0  # shown from the first step, complete at the end
    assert 20 <= len(published) <= 21
    assert all(b - a >= 5.0 for a, b in zip(published[:-1], published[1:-1], strict=False))


class Collect(logging.Handler):
    """The messages logged to one logger (Prefect's logging setup keeps them from pytest's caplog)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_broken_progress_artifact_never_stops_training(monkeypatch):
    from pipeline.tasks import logs

    def refuse(*args, **kwargs):
        raise RuntimeError("API down")

    monkeypatch.setattr(logs, "create_progress_artifact", refuse)
    reporter = logs.ProgressReporter(min_interval_s=0.0)
    warnings = Collect()
    logs.logger.addHandler(warnings)
    try:
        for step in range(1, 101):
            reporter(step, 100)
    finally:
        logs.logger.removeHandler(warnings)
    assert reporter.broken and sum("API down" in message for message in warnings.messages) == 1


def test_run_log_handler_forwards_once_and_only_inside_runs(monkeypatch):
    from pipeline.tasks import logs

    target = logging.getLogger(logs.PIPELINE_LOGGER)
    before_level, before_handlers = target.level, list(target.handlers)
    try:
        target.setLevel(logging.WARNING)
        # a flow run earlier in this process may have attached one already
        target.handlers[:] = [h for h in target.handlers if not isinstance(h, logs.APILogHandler)]
        assert logs.attach_run_log_handler("INFO") is True
        assert logs.attach_run_log_handler("INFO") is False  # a second hook call adds nothing
        handlers = [h for h in target.handlers if isinstance(h, logs.RunLogHandler)]
        assert len(handlers) == 1 and target.level == logging.INFO
        sent = []
        monkeypatch.setattr(logs.APILogHandler, "emit", lambda self, record: sent.append(record))
        logging.getLogger("pipeline.training.loop").info("outside any run")
        assert sent == []
    finally:
        target.handlers[:] = before_handlers
        target.setLevel(before_level)


def test_cli_prints_links_or_says_how_to_get_them():
    result = {
        "run_id": "r1",
        "tracking_uri": "sqlite:////ws/mlflow.db",
        "links": {
            "prefect_flow_run_id": "f1",
            "prefect_flow_run": "http://prefect/runs/flow-run/f1",
            "mlflow_model_version": "http://ui/#/models/m/versions/1",
        },
    }
    assert link_lines(result) == [
        "Prefect flow run: http://prefect/runs/flow-run/f1",
        "MLflow version: http://ui/#/models/m/versions/1",
        "MLflow run: r1 in sqlite:////ws/mlflow.db (set tracking.ui_url to the MLflow UI for links)",
    ]


@pytest.mark.parametrize("command", ["deploy", "serve"])
def test_deploy_command_and_its_deprecated_alias(command, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "PIPELINE_HOME": str(tmp_path / "ws"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", command, "--no-worker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and "no Prefect server configured" in done.stderr
    assert ("`pipeline serve` is deprecated" in done.stderr) == (command == "serve")


def test_a_failure_to_link_never_fails_the_run(monkeypatch):
    from pipeline.config import load_config
    from pipeline.tasks import links as link_tasks

    def refuse(*args):
        raise ConnectionError("tracking server down")

    monkeypatch.setattr(link_tasks.links, "tag_run", refuse)
    monkeypatch.setattr(link_tasks.links, "tag_version", refuse)
    monkeypatch.setattr(link_tasks.registry, "client", lambda uri: None)
    config = load_config(overrides=["tracking.ui_url=http://ui:5000"], environ={})
    from pipeline.results import Registration, TrackingRun

    tracking = TrackingRun(tracking_uri="http://mlflow:5000", run_id="r1", experiment_id="1")
    registered = Registration(
        model_name="m",
        model_version="1",
        model_uri="models:/m/1",
        aliases=[],
        gate={},
        promotion_note=None,
        model_card="",
        model_id="m-1",
    )
    warnings = Collect()
    link_tasks.logger.addHandler(warnings)
    try:
        assert link_tasks.link_tracking_run(config, tracking) == {}
        found = link_tasks.link_runs.fn(config, tracking, registered)
    finally:
        link_tasks.logger.removeHandler(warnings)
    assert found["mlflow_run"] == "http://ui:5000/#/experiments/1/runs/r1" and "mlflow_model_version" not in found
    assert sum("tracking server down" in message for message in warnings.messages) == 2
