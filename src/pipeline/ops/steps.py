"""Entry points of the operations stage: the retraining decision."""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.ops import retraining
from pipeline.results import RetrainingCheck
from pipeline.workspace import Workspace


def check_new_data(config: PipelineConfig, workspace: Workspace) -> RetrainingCheck:
    """Measure what arrived since the last training and decide whether this run trains."""
    new_data = retraining.measure_new_data(config, workspace)
    decision = retraining.decide_retraining(new_data, config.retraining.min_new_rows)
    return RetrainingCheck(train=decision.train, reason=decision.reason, new_data=new_data.to_dict())
