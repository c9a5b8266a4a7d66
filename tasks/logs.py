"""The pipeline's own log records in each flow run's logs (Prefect UI), and training progress as an artifact.

``forward_pipeline_logs`` is a flow ``on_running`` hook: it gives the ``pipeline`` logger a Prefect API
handler that only sends records emitted inside a flow or task run (console output is unchanged: the
records still propagate to the process's own handlers once). Setting ``PREFECT_LOGGING_EXTRA_LOGGERS=pipeline``
instead does the same; the hook then adds nothing.
"""

from __future__ import annotations

import logging
import time

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

logger = logging.getLogger(__name__)

PIPELINE_LOGGER = "pipeline"


class RunLogHandler(APILogHandler):
    """Sends a record to the Prefect API only when it was emitted inside a flow or task run."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def attach_run_log_handler(level: str = "INFO") -> bool:
    """Forward ``pipeline`` records at ``level`` and above to the run's logs; False when already forwarded."""
    target = logging.getLogger(PIPELINE_LOGGER)
    wanted = logging.getLevelName(level)
    if target.getEffectiveLevel() > wanted:
        target.setLevel(wanted)
    if any(isinstance(handler, APILogHandler) for handler in target.handlers):
        return False
    handler = RunLogHandler()
    handler.setLevel(wanted)
    target.addHandler(handler)
    return True


def forward_pipeline_logs(flow, flow_run, state) -> None:
    """Flow hook (``on_running``): the level is the run configuration's ``deployment.ui_log_level``."""
    from pipeline.tasks.notifications import config_of

    try:
        attach_run_log_handler(config_of(flow_run.parameters or {}).deployment.ui_log_level)
    except Exception:  # logging must never fail a run
        logger.exception("could not forward the pipeline's logs to the run")


class ProgressReporter:
    """Training progress as the ``training-progress`` artifact, updated each ``every`` fraction (at most once per
    ``min_interval_s``); a failure to publish is logged once and never stops training."""

    def __init__(self, every: float = 0.05, min_interval_s: float = 2.0, key: str = "training-progress"):
        self.every, self.min_interval_s, self.key = every, min_interval_s, key
        self.artifact_id = None
        self.published = -1.0
        self.last_time = 0.0
        self.broken = False

    def __call__(self, done: int, total: int) -> None:
        if self.broken or total <= 0:
            return
        percent = min(100.0, 100.0 * done / total)
        finished = done >= total
        if (
            not finished
            and self.artifact_id is not None
            and (percent - self.published < 100 * self.every or time.monotonic() - self.last_time < self.min_interval_s)
        ):
            return
        description = f"fine-tuning: {done}/{total} optimizer steps"
        try:
            if self.artifact_id is None:
                self.artifact_id = create_progress_artifact(percent, key=self.key, description=description)
            else:
                update_progress_artifact(self.artifact_id, percent, description=description)
        except Exception as exc:
            self.broken = True
            logger.warning("training progress not published: %s", exc)
            return
        self.published, self.last_time = percent, time.monotonic()
