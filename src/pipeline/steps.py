"""One function per pipeline stage, composing the library modules. Prefect tasks call exactly one
of these each; the CLI and tests can call them directly. Nothing here imports Prefect."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipeline import registry
from pipeline.config import PipelineConfig
from pipeline.contract_columns import ContractReference
from pipeline.data_docs import DataDocs
from pipeline.datastore import DataStore, StagedBatch
from pipeline.ingestion import IngestionError, file_sha256, normalise_text, read_labeled_file
from pipeline.snapshots import COLUMNS, Snapshot, load_snapshot
from pipeline.splits import split_frame
from pipeline.validation import ContractResult, DataValidationError, combine_results, validate_frame, validate_snapshot
from pipeline.workspace import Workspace, apply_environment_defaults

logger = logging.getLogger(__name__)


class NoDataError(RuntimeError):
    """There is no labeled data to train on."""


@dataclass
class DataOutcome:
    snapshot_id: str | None
    new_files: list[str]
    skipped_files: list[dict]
    quarantined: list[dict]
    rows_added: int
    snapshot_changed: bool
    contracts: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_workspace(config: PipelineConfig) -> Workspace:
    """Resolve and create the workspace and set the offline environment defaults."""
    workspace = Workspace.resolve(config.workspace).ensure()
    apply_environment_defaults(workspace)
    return workspace


def load_test_texts(snapshot: Snapshot | None, config: PipelineConfig) -> set[str]:
    """Normalised texts of the frozen test split of ``snapshot`` (for the leakage check)."""
    if snapshot is None:
        return set()
    splits = split_frame(snapshot.load(), config.data, load_holdout(config))
    return set(splits["test"]["text"].map(normalise_text))


def allowed_labels_for(config: PipelineConfig, head: Snapshot | None) -> list[str] | None:
    """Configured labels, else (unless new labels are allowed) the labels of the current snapshot."""
    if config.validation.allowed_labels:
        return [str(x) for x in config.validation.allowed_labels]
    if head is not None and not config.validation.allow_new_labels:
        return sorted(head.manifest.label_counts)
    return None


def contract_inputs(config: PipelineConfig, head: Snapshot | None) -> dict:
    """What the contract compares a batch with: allowed labels, the current snapshot, its test texts."""
    reference = head.load() if head is not None else None
    return {"allowed_labels": allowed_labels_for(config, head), "reference": ContractReference.from_frame(reference),
            "test_texts": load_test_texts(head, config)}


def data_docs_for(config: PipelineConfig, workspace: Workspace) -> DataDocs | None:
    return DataDocs.in_reports(workspace.reports) if config.validation.data_docs else None


def contract_checker(config: PipelineConfig, tokenizer, contracts: dict, docs: DataDocs | None = None):
    """The per-file data contract as a DataStore ``check`` callback; records every result in ``contracts``."""

    def check(batch: StagedBatch, head: Snapshot | None) -> dict[str, dict]:
        inputs = contract_inputs(config, head)
        rejected = {}
        for staged in batch.files:
            result = validate_frame(staged.frame, config.validation, tokenizer=tokenizer,
                                    max_length=config.model.max_length, max_conflict_share=config.data.max_conflict_share,
                                    docs=docs, run_name=Path(staged.uri).name, **inputs)
            contracts[staged.uri] = result.to_dict()
            if not result.success:
                rejected[staged.uri] = {"rule": result.failures[0]["rule"], "message": result.summary(staged.uri),
                                        "failures": result.failures, "warnings": result.warnings}
        return rejected

    return check


def validate_file(config: PipelineConfig, workspace: Workspace, uri: str, docs: DataDocs | None = None) -> ContractResult:
    """Run the contract on one file as ingestion would (against the current snapshot, if the workspace has
    one), without ingesting it; the snapshot suite judges the snapshot the file would make.

    Raises IngestionError when the file cannot be read.
    """
    from pipeline.modeling import load_tokenizer

    frame = read_labeled_file(uri, config.data)
    store = DataStore(workspace, config.data) if (workspace.ledger / "ledger.json").exists() else None
    head = store.head() if store is not None else None
    tokenizer = load_tokenizer(config.model.name_or_path)
    batch = validate_frame(frame, config.validation, tokenizer=tokenizer, max_length=config.model.max_length,
                           max_conflict_share=config.data.max_conflict_share, docs=docs, run_name=Path(uri).name,
                           **contract_inputs(config, head))
    rows = pd.concat([head.load()[COLUMNS] if head is not None else None, frame[COLUMNS]], ignore_index=True)
    rows = rows.dropna(subset=["text", "label"]).drop_duplicates(subset=["text", "label"])
    snapshot = validate_snapshot(rows, config.validation, docs, run_name=f"{Path(uri).name}-snapshot")
    result = combine_results([batch, snapshot])
    result.rows = len(frame)
    known = store.read_ledger()["files"].get(file_sha256(uri)) if store is not None else None
    if known:
        result.notes.append(f"this content is already in the ledger ({known['status']}): ingestion would skip it, "
                            "and the snapshot it was compared with may already hold its rows")
    return result


def ingest_and_validate(config: PipelineConfig, workspace: Workspace) -> DataOutcome:
    """Ingest new files (configured paths, else the landing zone), run the contract on each, quarantine
    what fails it and snapshot the rest. Does not raise on bad files: ``check_data_gate`` decides.
    Accepted files' contract reports go to ``reports/contracts/<snapshot id>/`` (logged to MLflow later)."""
    from pipeline.modeling import load_tokenizer

    store = DataStore(workspace, config.data)
    contracts: dict[str, dict] = {}
    tokenizer = load_tokenizer(config.model.name_or_path)
    result = store.ingest(config.data.paths or None,
                          contract_checker(config, tokenizer, contracts, data_docs_for(config, workspace)))
    outcome = DataOutcome(result.snapshot_id, result.new_files, result.skipped_files, result.quarantined,
                          result.rows_added, result.snapshot_changed, contracts)
    for uri in outcome.new_files:
        write_contract_report(workspace, outcome.snapshot_id, Path(uri).name, ContractResult.from_dict(contracts[uri]))
    return outcome


def write_contract_report(workspace: Workspace, snapshot_id: str, name: str, result: ContractResult) -> Path:
    """``reports/contracts/<snapshot id>/<name>.json`` and ``.md``; returns the folder."""
    folder = workspace.reports / "contracts" / snapshot_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
    (folder / f"{name}.md").write_text(result.to_markdown(f"Data contract: {name}"), encoding="utf-8")
    return folder


def check_data_gate(outcome: DataOutcome, config: PipelineConfig, workspace: Workspace) -> ContractResult:
    """Stop the run when a file of this batch was quarantined or the snapshot breaks the snapshot suite.

    Raises DataValidationError (contract; its message names the rule, the observed value and example
    rows, and ``result`` holds every check) or IngestionError (unreadable file), or NoDataError.
    """
    for item in outcome.quarantined:
        others = len(outcome.quarantined) - 1
        contract = outcome.contracts.get(item["uri"])
        if contract is None and item.get("report"):
            report = json.loads(Path(item["report"].replace(".report.md", ".report.json")).read_text())
            contract = {"success": False, "failures": report["failures"]} if report.get("failures") else None
        source = item["uri"] + (f" (and {others} more quarantined files)" if others else "")
        if contract is not None:
            raise DataValidationError(ContractResult.from_dict(contract), source=source)
        raise IngestionError(source, item["rule"] or "unreadable", item.get("message") or "")
    if outcome.snapshot_id is None:
        raise NoDataError(f"no labeled data: drop CSV/TSV/JSONL/Parquet files into {workspace.landing}, "
                          "pass --data PATH, or run `pipeline demo` for the demo data set")
    snapshot = load_snapshot(workspace.snapshots, outcome.snapshot_id)
    result = validate_snapshot(snapshot.load(), config.validation, data_docs_for(config, workspace),
                               run_name=f"snapshot-{snapshot.id}")
    write_contract_report(workspace, snapshot.id, "snapshot", result)
    if not result.success:
        raise DataValidationError(result, source=f"snapshot {snapshot.id}")
    return result


def load_holdout(config: PipelineConfig) -> pd.DataFrame | None:
    return read_labeled_file(config.data.holdout, config.data) if config.data.holdout else None


def split_snapshot(snapshot_id: str, config: PipelineConfig, workspace: Workspace) -> dict[str, pd.DataFrame]:
    """Train/validation/test frames of a snapshot (the test split frozen by text hash or pinned holdout)."""
    frame = load_snapshot(workspace.snapshots, snapshot_id).load()
    splits = split_frame(frame, config.data, load_holdout(config))
    if config.data.max_samples and len(splits["train"]) > config.data.max_samples:
        splits["train"] = splits["train"].sample(config.data.max_samples, random_state=config.training.seed)
    if splits["train"].empty:
        raise NoDataError(f"snapshot {snapshot_id} has no training rows")
    return splits


def tokenize_splits(splits: dict[str, pd.DataFrame], config: PipelineConfig, workspace: Workspace):
    """(tokenizer, label map, {split: TokenizedSplit}) using the content-keyed cache."""
    from pipeline.modeling import build_label_map, load_tokenizer
    from pipeline.tokenization import tokenize_split

    tokenizer = load_tokenizer(config.model.name_or_path)
    label_map = build_label_map(pd.concat([s["label"] for s in splits.values()]))
    tokenized = {name: tokenize_split(frame, tokenizer, label_map, config.model.max_length, workspace.cache / "tokens")
                 for name, frame in splits.items()}
    return tokenizer, label_map, tokenized


def training_fingerprint(config: PipelineConfig, snapshot_id: str, train_key: str, label_map: dict, base: str) -> dict:
    """What a checkpoint must match to be resumed: data, labels, model source and every training knob."""
    training = config.training.model_dump(exclude={"num_threads", "checkpoint_steps", "keep_checkpoints", "resume_from", "device"})
    return {"snapshot_id": snapshot_id, "train_tokens": train_key, "base_model": base,
            "labels": hashlib.sha256(json.dumps(label_map, sort_keys=True).encode()).hexdigest()[:16],
            "model": json.dumps(config.model.model_dump(exclude={"warm_start"}), sort_keys=True),
            "training": json.dumps(training, sort_keys=True)}


def start_tracking(config: PipelineConfig, workspace: Workspace, snapshot_id: str, run_name: str | None = None) -> dict:
    """Open the MLflow run for this training and log configuration, lineage tags and the data inputs."""
    tracking_uri = workspace.tracking_uri(config.registry.tracking_uri)
    client = registry.client(tracking_uri)
    artifact_location = workspace.artifact_root() if tracking_uri.startswith("sqlite:") else None
    experiment_id = registry.ensure_experiment(client, config.registry.experiment, artifact_location)
    snapshot = load_snapshot(workspace.snapshots, snapshot_id)
    name = run_name or f"train-{snapshot_id[:8]}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    run_id = registry.start_run(client, experiment_id, name, config.model_dump(), {
        "snapshot_id": snapshot_id, "snapshot_digest": snapshot.manifest.content_sha256,
        "base_model": config.model.name_or_path, "code_version": registry.code_version(),
        "registered_model": config.registry.model_name})
    client.log_text(run_id, json.dumps(snapshot.manifest.to_dict(), indent=2, default=str), "data/manifest.json")
    contract_reports = workspace.reports / "contracts" / snapshot_id
    if contract_reports.is_dir():
        client.log_artifacts(run_id, str(contract_reports), "data_contract")
    registry.log_dataset(run_id, snapshot.load(), name=f"snapshot-{snapshot_id}", source=str(snapshot.data_path),
                         context="training")
    return {"tracking_uri": tracking_uri, "run_id": run_id, "experiment_id": experiment_id}


def train_model(config: PipelineConfig, workspace: Workspace, tracking: dict, snapshot_id: str, tokenizer,
                label_map: dict, tokenized: dict, warm_start_dir: str | None = None, progress: bool = True) -> dict:
    """Fine-tune and save the best model under ``runs/<run_id>/model``; log epochs and the curve.

    With ``model.warm_start`` (and no explicit ``warm_start_dir``) the current champion is resolved and
    downloaded now (``pipeline.warm_start``; it falls back to the base model, saying why, when the
    champion does not fit). A run that finds a matching checkpoint resumes from it; the MLflow run then
    records ``resumed_from_step`` and the run that wrote the checkpoint (marked KILLED if it still shows
    RUNNING). Per-example sample counts are saved as ``runs/<run_id>/sample_counts.npy``.
    """
    import numpy as np

    from pipeline.evaluation import plot_training_curve
    from pipeline.modeling import load_model, save_model
    from pipeline.training import clear_checkpoints, fine_tune, seed_everything

    client = registry.client(tracking["tracking_uri"])
    run_id = tracking["run_id"]
    out_dir = workspace.runs / run_id
    source, source_id, warm_tag = config.model.name_or_path, config.model.name_or_path, None
    if warm_start_dir:
        source = source_id = warm_tag = warm_start_dir
    elif config.model.warm_start:
        from pipeline.warm_start import resolve_warm_start

        warm = resolve_warm_start(tracking["tracking_uri"], config.registry.model_name, config.model.name_or_path,
                                  label_map, out_dir / "warm_start")
        source, source_id, warm_tag = warm.source, warm.champion_uri or config.model.name_or_path, warm.tag()
    if warm_tag:
        client.set_tag(run_id, "warm_start", warm_tag)
    fingerprint = training_fingerprint(config, snapshot_id, tokenized["train"].cache_key, label_map, source_id)
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    checkpoint_dir = workspace.checkpoints / config.registry.model_name / key
    resume_from = Path(config.training.resume_from) if config.training.resume_from else None
    seed_everything(config.training.seed)
    model = load_model(source, label_map, config.model)

    def on_epoch(record: dict) -> None:
        registry.log_metrics(client, run_id, {k: v for k, v in record.items() if k not in ("epoch", "step")},
                             step=record["epoch"])

    def on_resume(info: dict) -> None:
        record_resume(client, run_id, info)
        for record in info["history"]:  # epochs finished before the interruption belong to this run's curve too
            on_epoch(record)

    result = fine_tune(model, tokenized["train"], tokenized.get("validation"), tokenizer.pad_token_id,
                       config.training, checkpoint_dir, fingerprint, resume_from=resume_from, on_epoch=on_epoch,
                       progress=progress, on_resume=on_resume, checkpoint_meta={"mlflow_run_id": run_id})
    model_dir = save_model(result.model, tokenizer, out_dir / "model")
    registry.write_model_meta(model_dir, {"max_length": config.model.max_length, "label_map": label_map,
                                          "base_model": config.model.name_or_path, "snapshot_id": snapshot_id,
                                          "warm_started_from": source_id if source_id != config.model.name_or_path else None})
    curve = plot_training_curve(result.history, result.step_log, out_dir / "training_curve.png")
    registry.log_metric_series(client, run_id, result.step_log, "step")
    registry.log_metrics(client, run_id, {"train_samples_per_s": result.samples_per_s,
                                          "train_seconds": result.train_seconds, "optimizer_steps": result.steps})
    client.log_artifact(run_id, str(curve), "plots")
    client.set_tag(run_id, "device", result.device)
    client.set_tag(run_id, "resumed", str(result.resumed_from_step is not None).lower())
    np.save(out_dir / "sample_counts.npy", result.sample_counts)
    clear_checkpoints(checkpoint_dir)
    return {"model_dir": str(model_dir), "history": result.history, "steps": result.steps,
            "planned_steps": result.planned_steps, "resumed_from_step": result.resumed_from_step,
            "samples_per_s": result.samples_per_s, "train_seconds": result.train_seconds, "device": result.device,
            "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
            "train_rows": len(tokenized["train"]), "warm_start": warm_tag,
            "sample_counts": str(out_dir / "sample_counts.npy")}


def record_resume(client, run_id: str, info: dict) -> None:
    """Tag the run with where it resumed; mark the run that wrote the checkpoint KILLED if still RUNNING."""
    previous = (info.get("meta") or {}).get("mlflow_run_id")
    client.set_tag(run_id, "resumed_from_step", str(info["step"]))
    client.set_tag(run_id, "resumed_from_checkpoint", info["checkpoint"])
    if previous and previous != run_id:
        client.set_tag(run_id, "resumed_from_run", previous)
        try:
            if client.get_run(previous).info.status == "RUNNING":
                client.set_tag(previous, "failure_reason", f"interrupted; resumed by run {run_id} at step {info['step']}")
                registry.end_run(client, previous, status="KILLED")
        except Exception as exc:  # the old run may live in another store; the resume itself is what matters
            logger.warning("could not mark run %s as KILLED: %s", previous, exc)


def evaluate_model(model_dir: str, test_frame: pd.DataFrame, config: PipelineConfig, workspace: Workspace,
                   tracking: dict) -> dict:
    """Score the test split with the saved model; log metrics, per-class table and plots to the run."""
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.evaluation import evaluate_predictions
    from pipeline.inference import predict_proba
    from pipeline.tokenization import tokenize_texts
    from pipeline.training import select_device

    device = select_device(config.training.device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device)
    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if test_frame.empty:
        raise ValueError("the test split is empty: add data or lower data.test_share")
    y_true = test_frame["label"].astype(str).map(label2id).to_numpy()
    if np.isnan(y_true.astype(float)).any():
        raise ValueError("the test split holds labels the model was not trained on")
    ids = tokenize_texts(tokenizer, test_frame["text"].tolist(), config.model.max_length)
    proba = predict_proba(model, ids, tokenizer.pad_token_id, config.training.eval_batch_size, device, config.training.bf16)
    out_dir = workspace.runs / tracking["run_id"] / "evaluation"
    report = evaluate_predictions(test_frame, proba, y_true.astype(int), names, out_dir)
    np.save(out_dir / "probabilities.npy", proba)
    client = registry.client(tracking["tracking_uri"])
    metrics = {f"test_{k}": v for k, v in report["metrics"].items()}
    per_class = {f"test_f1_{row.label}": row.f1 for row in report["per_class"].itertuples()}
    registry.log_metrics(client, tracking["run_id"], {**metrics, **per_class})
    for path in report["files"].values():
        client.log_artifact(tracking["run_id"], str(path), "evaluation")
    return {"metrics": report["metrics"], "per_class": report["per_class"].to_dict("records"),
            "slices": report["slices"].to_dict("records"), "out_dir": str(out_dir),
            "probabilities": str(out_dir / "probabilities.npy"), "label_names": names}


def compare_with_champion(config: PipelineConfig, tracking: dict, test_frame: pd.DataFrame, evaluation: dict) -> dict:
    """Re-score the live champion on this run's test split, compare it with the candidate and decide the gate.

    The champion is whatever ``models:/NAME@champion`` points to now (never cached, so a promotion made
    in the MLflow UI counts); the exact version it resolves to is loaded and named in the report. A
    champion that cannot be loaded or scored fails the gate (the run goes on and registers the version
    without an alias). Logs the outcome (metrics, tags, ``registry/comparison.{md,json}``) to the run.
    """
    import numpy as np

    from pipeline import model_card, promotion, registration

    client = registry.client(tracking["tracking_uri"])
    name, policy = config.registry.model_name, config.registry
    names = evaluation["label_names"]
    proba = np.load(evaluation["probabilities"])
    candidate = [names[i] for i in proba.argmax(axis=1)]
    truth, texts = test_frame["label"].astype(str).tolist(), test_frame["text"].astype(str).tolist()
    now = lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    champion_version = registry.alias_version(client, name, registry.CHAMPION)
    champion, comparison = None, None
    if champion_version is not None:
        champion = {"version": champion_version, "uri": f"models:/{name}/{champion_version}",
                    "resolved_from": f"models:/{name}@{registry.CHAMPION}", "resolved_at": now(),
                    "run_id": client.get_model_version(name, champion_version).run_id}
        try:
            labels, scores, known = registry.predict_with(registry.load_version(champion["uri"]), texts)
            comparison = promotion.compare_predictions(truth, candidate, labels, policy, champion_confidence=scores,
                                                       label_names=names, champion_labels=known,
                                                       candidate_confidence=proba.max(axis=1), seed=config.training.seed)
        except Exception as exc:  # any failure to re-score fails the gate, never the run
            logger.exception("could not re-score champion %s", champion["uri"])
            comparison = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        comparison["champion"] = champion
    outcome = {"model_name": name, "primary_metric": policy.primary_metric,
               "candidate": {"run_id": tracking["run_id"], "metrics": evaluation["metrics"]},
               "champion": champion, "comparison": comparison,
               "gate": promotion.decide_promotion(policy, evaluation["metrics"], comparison),
               "test_rows": len(truth), "test_split_digest": promotion.split_digest(texts, truth),
               "compared_at": now(), "policy": policy.model_dump(include=promotion.POLICY_KEYS)}
    report = model_card.render_comparison(outcome)
    registration.log_comparison(client, tracking["run_id"], outcome, report)
    return {**outcome, "report": report}


def register_model(config: PipelineConfig, tracking: dict, model_dir: str, snapshot_id: str, evaluation: dict,
                   comparison: dict | None = None) -> dict:
    """Log the pyfunc, register a version with its lineage, gate outcome and model card, then move aliases.

    ``comparison`` is ``compare_with_champion``'s outcome. A version that passes the gate gets
    ``challenger``; ``become_champion`` (first version, or ``auto_promote``) moves ``champion`` by
    compare-and-set against the champion it was compared with, so when two runs finish together only
    one becomes champion and the other records why it was not promoted. Every move is audited.
    """
    from pipeline import aliases, model_card, registration
    from pipeline.workspace import Workspace

    client = registry.client(tracking["tracking_uri"])
    name, run_id = config.registry.model_name, tracking["run_id"]
    outcome = comparison or registration.uncompared_outcome(config.registry, client, run_id, evaluation)
    gate = outcome["gate"]
    manifest = Workspace.resolve(config.workspace).snapshots / snapshot_id / "manifest.json"
    lineage = registry.collect_lineage(client, run_id, Path(model_dir), manifest, config.model.name_or_path)
    version = registration.find_version_of_run(client, name, run_id)  # a retried task reuses its version
    if version is None:
        model_uri = registry.log_model(run_id, Path(model_dir), EXAMPLE_TEXTS)
        version = registry.register_version(client, model_uri, name, run_id,
                                            registration.version_tags(lineage, evaluation["metrics"], outcome),
                                            f"Registering. Gate: {gate['reason']}"[:5000])
    number, actor = str(version.version), f"pipeline run {run_id} ({aliases.default_actor()})"
    note = None
    if gate["passed"]:
        aliases.move_alias(client, name, registry.CHALLENGER, number, actor=actor, action="gate", reason=gate["reason"])
    if gate["become_champion"]:
        expected = outcome["champion"]["version"] if outcome["champion"] else None
        try:
            aliases.move_alias(client, name, registry.CHAMPION, number, expect_current=expected, actor=actor,
                               action="first-champion" if expected is None else "auto-promote", reason=gate["reason"])
        except aliases.AliasMovedError as exc:
            note = f"the champion moved while this run was being evaluated ({exc}); compare again or promote by hand"
            client.set_model_version_tag(name, number, "promotion_refused", note)
            logger.warning("version %s not promoted: %s", number, note)
    current = registry.aliases_of(client, name, number)
    card = model_card.render_model_card(name, number, lineage, evaluation, outcome, current, note)
    compact = model_card.render_model_card(name, number, lineage, evaluation, outcome, current, note, compact=True)
    client.update_model_version(name, number, description=model_card.fit_description(card, compact))
    client.log_text(run_id, card, "registry/model_card.md")
    registry.end_run(client, run_id)
    return {"model_name": name, "model_version": number, "model_uri": version.source, "aliases": current,
            "gate": gate, "promotion_note": note, "model_card": card}


EXAMPLE_TEXTS = ["the app crashes on start", "my parcel has not arrived", "I was charged twice"]


def fail_tracking(tracking: dict | None, reason: str) -> None:
    """Mark the MLflow run FAILED with the reason (no-op when no run was opened)."""
    if not tracking:
        return
    client = registry.client(tracking["tracking_uri"])
    client.set_tag(tracking["run_id"], "failure_reason", reason[:5000])
    registry.end_run(client, tracking["run_id"], status="FAILED")


def elapsed_since(start: float) -> float:
    return round(time.perf_counter() - start, 2)
