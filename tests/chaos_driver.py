"""One training run, stage by stage, as ``flows/training.py`` wires it, with a fault point at each boundary.

Run as ``python -m tests.chaos_driver CONFIG_JSON``; ``$PIPELINE_FAULT_POINT`` names where the process
kills itself (``pipeline.faults``). The Prefect wrappers are left out so that each run costs seconds: the
chaos test needs dozens of them. The real flow is killed the same way in the opt-in slow mode.
"""

from __future__ import annotations

import json
import sys

from pipeline.config import PipelineConfig
from pipeline.faults import fault_point

BOUNDARIES = ["after-ingest", "after-split", "after-start-tracking", "after-train", "after-evaluate", "after-compare"]


def run(config: PipelineConfig) -> dict:
    from pipeline.data import steps as data_steps
    from pipeline.evaluation import steps as evaluation_steps
    from pipeline.registry import steps as registry_steps
    from pipeline.run_lock import hold_run_lock
    from pipeline.training import steps as training_steps
    from pipeline.validation import steps as validation_steps
    from pipeline.workspace import prepare_workspace

    workspace = prepare_workspace(config)
    with hold_run_lock(workspace, config.registry.model_name, what="chaos driver"):
        data = data_steps.ingest_and_validate(config, workspace)
        fault_point("after-ingest")
        validation_steps.check_data_gate(config, workspace, data)
        splits = data_steps.split_snapshot(config, workspace, data.snapshot_id)
        fault_point("after-split")
        tokenized = training_steps.tokenize_splits(config, workspace, splits)
        tracking = registry_steps.start_tracking(config, workspace, data.snapshot_id)
        fault_point("after-start-tracking")
        try:
            trained = training_steps.train_model(config, workspace, tracking, tokenized, progress=False)
            fault_point("after-train")
            evaluation = evaluation_steps.evaluate_model(config, workspace, tracking, trained, splits)
            fault_point("after-evaluate")
            comparison = evaluation_steps.compare_with_champion(config, workspace, tracking, evaluation, splits)
            fault_point("after-compare")
            registered = registry_steps.register_model(config, workspace, tracking, trained, evaluation, comparison)
        except BaseException as exc:
            registry_steps.fail_tracking(tracking, f"{type(exc).__name__}: {exc}")
            raise
    return {
        "snapshot_id": data.snapshot_id,
        "model_version": registered.model_version,
        "resumed_from_step": trained.resumed_from_step,
    }


if __name__ == "__main__":
    result = run(PipelineConfig.model_validate_json(open(sys.argv[1]).read()))
    print(json.dumps(result))
