"""Entry points of the evaluation stage: score the test split, compare with the live champion."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

from pipeline.config import PipelineConfig
from pipeline.registry import tracking as registry
from pipeline.registry.naming import per_class_metrics
from pipeline.results import Comparison, Evaluation, Splits, TrackingRun, TrainedModel
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


def evaluate_model(
    config: PipelineConfig, workspace: Workspace, tracking: TrackingRun, trained: TrainedModel, splits: Splits
) -> Evaluation:
    """Score the test split with the saved model; log metrics, per-class table and plots to the run."""
    import numpy as np
    from transformers import AutoTokenizer

    from pipeline.evaluation.metrics import evaluate_predictions
    from pipeline.training.devices import select_device
    from pipeline.training.inference import predict_proba
    from pipeline.training.pooling import load_classifier
    from pipeline.training.tokenization import tokenize_texts

    model_dir, test_frame = trained.model_dir, splits.test
    device = select_device(config.training.device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = load_classifier(model_dir).to(device)
    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if test_frame.empty:
        raise ValueError("the test split is empty: add data or lower data.test_share")
    y_true = test_frame["label"].astype(str).map(label2id).to_numpy()
    if np.isnan(y_true.astype(float)).any():
        raise ValueError("the test split holds labels the model was not trained on")
    ids = tokenize_texts(tokenizer, test_frame["text"].tolist(), config.model.max_length)
    proba = predict_proba(
        model, ids, tokenizer.pad_token_id, config.training.eval_batch_size, device, config.training.bf16
    )
    out_dir = workspace.runs / tracking.run_id / "evaluation"
    report = evaluate_predictions(test_frame, proba, y_true.astype(int), names, out_dir)
    np.save(out_dir / "probabilities.npy", proba)
    client = registry.client(tracking.tracking_uri)
    metrics = {f"test_{k}": v for k, v in report["metrics"].items()}
    per_class, metric_labels = per_class_metrics("test_f1.", report["per_class"].to_dict("records"))
    registry.log_metrics(client, tracking.run_id, {**metrics, **per_class})
    client.log_dict(
        tracking.run_id,
        {
            "per_class_metric_labels": metric_labels,
            "classes": len(names),
            "per_class_table": "evaluation/per_class.csv",
        },
        "evaluation/class_metrics.json",
    )
    dataset = registry.log_dataset(
        tracking.run_id, test_frame, name="test-split", source=str(out_dir), context="evaluation"
    )
    for path in report["files"].values():
        client.log_artifact(tracking.run_id, str(path), "evaluation")
    return Evaluation(
        metrics=report["metrics"],
        per_class=report["per_class"].to_dict("records"),
        slices=report["slices"].to_dict("records"),
        out_dir=str(out_dir),
        probabilities=str(out_dir / "probabilities.npy"),
        label_names=names,
        dataset=dataset,
    )


def rescore_champion(
    config: PipelineConfig, workspace: Workspace, tracking_uri: str, model_uri: str, texts: list[str]
) -> tuple[list[str], list[float], list[str]]:
    """(labels, scores, the classes it knows) of a registered version on ``texts``.

    The version is loaded from its saved weights and tokenizer by this project's own code
    (``pipeline.scoring.model``): its Python code is never executed, so writing to the registry does not
    mean running code in the next training.
    """
    from pipeline.scoring.model import load_registered_model
    from pipeline.scoring.scorer import score_chunk

    champion = load_registered_model(tracking_uri, model_uri, workspace.cache / "models", config.training.device)
    scored = score_chunk(champion, texts, config.training.eval_batch_size).predictions
    return scored["label"].astype(str).tolist(), scored["score"].astype(float).tolist(), list(champion.labels)


def compare_with_champion(
    config: PipelineConfig, workspace: Workspace, tracking: TrackingRun, evaluation: Evaluation, splits: Splits
) -> Comparison:
    """Re-score the live champion on this run's test split, compare it with the candidate and decide the gate.

    The champion is whatever ``models:/NAME@champion`` points to now (never cached, so a promotion made
    in the MLflow UI counts); the exact version it resolves to is loaded and named in the report. A
    champion that cannot be loaded or scored fails the gate (the run goes on and registers the version
    without an alias), unless the cause is infrastructure (network, timeout, full disk, MLflow 5xx): then
    ChampionUnavailableError stops the run before it registers anything.
    Logs the outcome (metrics, tags, ``registry/comparison.{md,json}``) to the run.
    """
    import numpy as np

    from pipeline.registry import gate as promotion
    from pipeline.registry import model_card
    from pipeline.registry import versions as registration
    from pipeline.registry.connection import ChampionUnavailableError, is_infrastructure_error

    client = registry.client(tracking.tracking_uri)
    name, policy, test_frame = config.registry.model_name, config.promotion, splits.test
    names = evaluation.label_names
    proba = np.load(evaluation.probabilities)
    candidate = [names[i] for i in proba.argmax(axis=1)]
    truth, texts = test_frame["label"].astype(str).tolist(), test_frame["text"].astype(str).tolist()
    now = lambda: datetime.now(UTC).isoformat(timespec="seconds")  # noqa: E731
    champion_version = registry.alias_version(client, name, registry.CHAMPION)
    champion, comparison = None, None
    if champion_version is not None:
        champion = {
            "version": champion_version,
            "uri": f"models:/{name}/{champion_version}",
            "resolved_from": f"models:/{name}@{registry.CHAMPION}",
            "resolved_at": now(),
            "run_id": client.get_model_version(name, champion_version).run_id,
        }
        try:
            labels, scores, known = rescore_champion(config, workspace, tracking.tracking_uri, champion["uri"], texts)
            comparison = promotion.compare_predictions(
                truth,
                candidate,
                labels,
                policy,
                champion_confidence=scores,
                label_names=names,
                champion_labels=known,
                candidate_confidence=proba.max(axis=1),
                seed=config.training.seed,
            )
        except Exception as exc:  # a model that cannot be re-scored fails the gate, never the run...
            if is_infrastructure_error(exc):  # ...but an unreachable store must not count the data as trained
                raise ChampionUnavailableError(
                    f"could not load champion {champion['uri']} ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); nothing registered, "
                    "the next run compares again"
                ) from exc
            logger.exception("could not re-score champion %s", champion["uri"])
            comparison = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        comparison["champion"] = champion
    outcome = Comparison(
        model_name=name,
        primary_metric=policy.primary_metric,
        candidate={"run_id": tracking.run_id, "metrics": evaluation.metrics},
        champion=champion,
        comparison=comparison,
        gate=promotion.decide_promotion(policy, evaluation.metrics, comparison),
        test_rows=len(truth),
        test_split_digest=promotion.split_digest(texts, truth),
        compared_at=now(),
        policy=policy.model_dump(),
    )
    report = model_card.render_comparison(outcome.to_dict())
    registration.log_comparison(client, tracking.run_id, outcome.to_dict(), report)
    return dataclasses.replace(outcome, report=report)
