"""Typed pipeline configuration: embedded defaults, YAML files, ``--set`` overrides and environment.

The same ``PipelineConfig`` model is the Prefect flows' parameter, so the Prefect UI renders it as a
typed form with the descriptions and bounds declared here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "PIPELINE__"
PACKAGED_MODEL = "packaged:all-minilm-l6-v2"
MISSING_LABEL_MARKERS = ("None", "null", "NaN", "NA", "N/A", "nil", "#N/A", "undefined")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where labeled files come from and how they are read and split."""

    paths: list[str] = Field(
        default_factory=list,
        description="Labeled files, folders or fsspec URLs to ingest. Empty: the landing zone, or the demo data when that is empty too.",
    )
    text_column: str = Field("text", description="Column holding the text.")
    label_column: str = Field("label", description="Column holding the label (string or integer).")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = Field(
        "auto", description="File format; auto picks it from the file extension (.gz allowed)."
    )
    encoding: str = Field("utf-8", description="Text encoding of CSV/TSV/JSONL files (a BOM is accepted).")
    read_attempts: int = Field(3, ge=1, le=10, description="Tries to read a file before an I/O error (not a parse "
                               "error) quarantines it as unreadable; waits double between tries.")
    read_retry_delay_s: float = Field(0.5, ge=0.0, le=60.0, description="Wait before the second try to read a file.")
    quoting: Literal["strict", "none"] = Field(
        "strict", description="CSV/TSV quoting: strict (RFC 4180; an unbalanced quote refuses the file) or none "
        "(every field literal, for exports that never quote).")
    validation_share: float = Field(0.1, ge=0.0, le=0.5, description="Share of texts in the validation split.")
    test_share: float = Field(0.1, gt=0.0, le=0.5, description="Share of texts in the frozen test split.")
    split_salt: str = Field("v1", description="Salt of the text hash that assigns splits; changing it reshuffles every split.")
    holdout: str | None = Field(None, description="Optional labeled file that is always the test split.")
    conflict_policy: Literal["drop", "latest", "fail"] = Field(
        "drop", description="Same normalised text with different labels: drop both, keep the latest, or fail."
    )
    max_conflict_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Fail the batch when conflicting rows exceed this share of it."
    )
    max_samples: int | None = Field(None, ge=1, description="Cap on the rows used (smoke tests); None uses all.")
    chunk_rows: int = Field(20_000, ge=1, le=10_000_000, description="Rows parsed at a time while reading a file (bounds memory).")
    max_rows_in_memory: int = Field(
        250_000, ge=1_000, description="Largest snapshot deduplicated in memory; larger ones are partitioned on disk by text hash."
    )
    hf_split: str = Field("train", min_length=1, description="Split read from hf:NAME[:CONFIG] sources ('train+validation' joins splits).")
    allowed_url_schemes: list[str] = Field(
        default_factory=lambda: ["file", "hf"],
        description="URL schemes data.paths may name (local paths are 'file'). Add e.g. 's3' or 'https' to fetch "
        "remote data.")
    allowed_url_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (or buckets) remote data.paths may name; empty: any host of an allowed scheme.")
    lock_timeout_s: float = Field(
        600.0, ge=0.0, description="Seconds an ingest waits for another one to finish before giving up (DataStoreBusy)."
    )


class ValidationConfig(_Section):
    """The data contract applied to every batch before anything trains on it (see expectations/README.md)."""

    suite: str = Field(
        "labeled_text", description="Batch expectation suite: a name under expectations/suites/ or a path to a suite JSON file.")
    extra_suites: list[str] = Field(
        default_factory=list, description="More suite files (names or paths) whose expectations are added to the suite; "
        "one with the same meta.rule as a built-in expectation replaces it.")
    snapshot_suite: str = Field(
        "labeled_text_snapshot", description="Suite run on the class balance of the resulting snapshot (name or path).")
    severity: dict[str, Literal["error", "warning", "off"]] = Field(
        default_factory=dict, description="Per-rule severity override, e.g. {label_drift: error, duplicate_rows: off}; "
        "error stops the run, warning is reported.")
    allowed_labels: list[str] | None = Field(
        None, description="Allowed labels. None: the labels of the current snapshot (the first accepted one sets them).")
    missing_label_markers: list[str] = Field(
        default_factory=lambda: list(MISSING_LABEL_MARKERS),
        description="Label values that mean 'missing' (compared case-insensitively): rows holding them are refused.")
    allow_new_labels: bool = Field(False, description="Accept labels not seen in the current snapshot (ignored when allowed_labels is set).")
    min_text_length: int = Field(1, ge=1, description="Shortest allowed text, in characters (after stripping).")
    max_text_length: int = Field(10_000, ge=1, description="Longest allowed text, in characters.")
    max_duplicate_share: float = Field(
        0.1, ge=0.0, le=1.0, description="Highest share of exact duplicate (text, label) rows in a batch. Real corpora "
        "hold under 1% (SST-2 train 0.5%); a file appended to itself holds 50%.")
    max_leakage_share: float = Field(
        0.05, ge=0.0, le=1.0, description="Highest share of new rows whose normalised text is in the frozen test split. "
        "Organic repeats stay near 1%; re-sent old data repeats about data.test_share of its rows.")
    min_examples_per_class: int = Field(2, ge=1, description="Fewest examples each class needs in a snapshot.")
    max_class_share: float = Field(0.98, gt=0.0, le=1.0, description="Highest share one class may take of a snapshot.")
    max_label_drift_kl: float = Field(0.5, ge=0.0, description="KL divergence of the batch's label distribution from the snapshot's.")
    max_truncated_share: float = Field(0.05, ge=0.0, le=1.0, description="Highest share of rows longer than model.max_length tokens.")
    max_unknown_token_share: float = Field(0.05, ge=0.0, le=1.0, description="Highest mean share of unknown tokens per row.")
    max_control_char_share: float = Field(0.01, ge=0.0, le=1.0, description="Highest share of rows holding control characters.")
    token_check_rows: int | None = Field(
        10_000, ge=100, description="Tokenizer checks look at a seeded random sample of this many rows (plus every row "
        "without a letter or digit, for the empty-after-tokenization check); None tokenizes every row.")
    data_docs: bool = Field(True, description="Write Great Expectations Data Docs (offline HTML) under the workspace's reports/.")


class ModelConfig(_Section):
    """Which pretrained transformer to fine-tune, and how."""

    name_or_path: str = Field(
        PACKAGED_MODEL,
        description=f"Hugging Face model id or local folder; '{PACKAGED_MODEL}' is the MiniLM shipped with the install.",
    )
    max_length: int = Field(128, ge=8, le=8192, description="Longest input in tokens; longer texts are truncated.")
    method: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA adapters (peft).")
    lora_r: int = Field(8, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling.")
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="LoRA dropout.")
    warm_start: bool = Field(False, description="Start from the current champion's weights instead of the base model.")
    pooling: Literal["auto", "pooler", "cls", "mean", "max"] = Field(
        "auto", description="What the classification head reads: auto takes the checkpoint's sentence-transformers "
        "pooling (mean for the packaged MiniLM) or else the architecture's [CLS] pooler; cls is the raw [CLS] vector.")


class TrainingConfig(_Section):
    """The fine-tuning loop."""

    epochs: int = Field(3, ge=1, le=100, description="Passes over the training split.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(32, ge=1, le=4096, description="Examples per micro-batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=256, description="Micro-batches per optimizer step.")
    eval_batch_size: int = Field(128, ge=1, le=8192, description="Examples per evaluation batch.")
    learning_rate: float = Field(1e-4, gt=0.0, le=1.0, description="Peak learning rate of AdamW for the pretrained "
                                 "body (1e-4 suits small models like the packaged MiniLM; use 2e-5 to 5e-5 for base/large ones).")
    head_learning_rate_factor: float = Field(
        100.0, ge=1.0, le=1000.0, description="The newly initialised classification head learns this many times "
        "faster than the pretrained body (a fresh head at the body's rate needs many steps to separate classes); "
        "1 disables. Not applied to a warm start, whose head is trained.")
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, description="AdamW weight decay (never on biases or LayerNorm).")
    warmup_ratio: float = Field(0.06, ge=0.0, lt=1.0, description="Share of steps spent warming the learning rate up.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient clipping norm.")
    class_weights: bool = Field(False, description="Weight the loss by inverse class frequency.")
    seed: int = Field(42, description="Seed for initialisation and data order.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU.")
    bf16: bool = Field(True, description="bf16 autocast on CUDA (CPU always trains in fp32).")
    compile: bool = Field(False, description="torch.compile the model (CUDA only).")
    group_by_length: bool = Field(True, description="Batch texts of similar length together to cut padding.")
    max_batch_tokens: int | None = Field(
        None, ge=16, description="Batch by tokens instead of rows: each batch holds up to this many padded tokens "
        "(length-grouped; batch_size is then unused). On a GPU it keeps short texts from leaving it launch-bound.")
    early_stopping_patience: int | None = Field(2, ge=1, description="Epochs without improvement before stopping; None disables.")
    metric_for_best: Literal["accuracy", "macro_f1"] = Field("macro_f1", description="Validation metric that picks the best epoch.")
    checkpoint_steps: int = Field(200, ge=1, description="Write a resumable checkpoint every this many optimizer steps.")
    keep_checkpoints: int = Field(2, ge=1, le=100, description="How many recent checkpoints to keep.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; None keeps torch's default.")
    resume_from: str | None = Field(
        None, description="Checkpoint folder to resume from (refused when made by another configuration or data). "
        "None: the newest matching checkpoint in the workspace, if any.")
    num_processes: int | Literal["auto"] = Field(
        1, description="Data-parallel training processes on this machine (launched with torchrun; NCCL on GPUs, gloo "
        "on CPU). auto: one per visible GPU (1 without one). The global batch stays training.batch_size.")
    num_nodes: int = Field(1, ge=1, le=1024, description="Machines taking part in one training run (each runs "
                           "num_processes); more than 1 needs training.rdzv_endpoint and a workspace shared by all.")
    rdzv_endpoint: str | None = Field(
        None, pattern=r"^\S+:\d+$", description="host:port of the torchrun c10d rendezvous for several nodes "
        "(the machine of the flow run hosts it; the other nodes join with the same endpoint).")
    collective_timeout_s: float = Field(
        600.0, ge=10.0, le=86_400.0, description="Seconds a process waits in a collective for the others before the "
        "step fails (a hung or lost rank never hangs the run).")

    @field_validator("num_processes")
    @classmethod
    def _check_processes(cls, value: int | str) -> int | str:
        if value != "auto" and not 1 <= int(value) <= 1024:
            raise ValueError("must be auto or an integer from 1 to 1024")
        return value


class TrackingConfig(_Section):
    """Where runs are recorded: the MLflow tracking server and experiment."""

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI. None: MLFLOW_TRACKING_URI, else SQLite in the workspace."
    )
    artifact_location: str | None = Field(
        None, description="Artifact location of a new experiment (e.g. s3://bucket/mlflow) when the tracking URI is a "
        "database or when a tracking server should not choose. None: the server's default, or the workspace's "
        "mlflow/artifacts folder for a database.")
    experiment: str = Field("text-classification", min_length=1, description="MLflow experiment name.")
    ui_url: str | None = Field(
        None, pattern=r"^https?://\S+$", description="Address of the MLflow UI for links from Prefect runs and "
        "the command line. None: the tracking URI when it is an http(s) server, else no links.")
    http_timeout_s: int = Field(15, ge=1, le=600, description="Seconds one MLflow HTTP request may wait for an answer.")
    http_max_retries: int = Field(3, ge=0, le=10,
                                  description="Retries of a failed MLflow HTTP request (backoff between).")
    http_backoff_factor: int = Field(
        1, ge=0, le=30, description="Backoff between MLflow retries: factor x 1, 2, 4... seconds. The defaults give up "
        "on a dead tracking server within about a minute.")



class RegistryConfig(_Section):
    """The MLflow Model Registry entry that versions are registered under."""

    model_name: str = Field("text-classifier", min_length=1, description="Registered model name.")


class PromotionConfig(_Section):
    """The promotion gate: when a new version becomes challenger, and champion."""

    primary_metric: Literal["accuracy", "macro_f1"] = Field("macro_f1", description="Metric the promotion gate compares.")
    min_metric: float = Field(0.0, ge=0.0, le=1.0, description="Floor for any promotion, the first one included.")
    min_improvement: float = Field(0.0, ge=-1.0, le=1.0, description="Smallest gain over the champion to pass the gate.")
    max_class_regression: float = Field(0.05, ge=0.0, le=1.0, description="Largest per-class F1 drop allowed versus the champion.")
    require_significance: bool = Field(False, description="Require the gain to be significant (bootstrap CI and McNemar).")
    significance_level: float = Field(0.05, gt=0.0, lt=0.5, description="Alpha for the significance tests.")
    bootstrap_samples: int = Field(1000, ge=100, le=100_000, description="Paired bootstrap resamples.")
    auto_promote: bool = Field(False, description="Make a challenger that passes the gate champion at once.")


class RetrainingConfig(_Section):
    """When scheduled retraining trains: how much new data, on which schedule, on which event."""

    min_new_rows: int = Field(
        1, ge=1, description="Fewest new labeled rows (pending in the landing zone, or ingested but not trained on "
        "yet) that make a retraining run train; fewer and it finishes at once with 'no new data'.")
    schedule_cron: str = Field(
        "0 * * * *", pattern=r"^\s*\S+(\s+\S+){4,5}\s*$",
        description="Cron schedule of the retraining deployment (five fields; default: hourly, on the hour).")
    timezone: str = Field("UTC", min_length=1, description="Time zone of the cron schedule (IANA name).")
    trigger_on_new_data: bool = Field(
        True, description="Also run retraining when ingestion announces a new snapshot (event pipeline.data.arrived).")


class DeploymentConfig(_Section):
    """How deployed runs are executed and limited on a Prefect server."""

    work_pool: str = Field("pipeline", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                           description="Prefect process work pool that runs the deployments (created when missing).")
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = Field(
        "ENQUEUE", description="A deployed training or retraining run started while another one of the same registered "
        "model is active: wait for the slot (ENQUEUE) or be cancelled (CANCEL_NEW).")
    run_lock_wait_s: float = Field(
        0.0, ge=0.0, le=86_400.0, description="Seconds a run waits for another run of the same model and workspace "
        "to finish before it stops with 'another run ... is in progress' (0: stop at once).")
    training_timeout_seconds: int = Field(
        6 * 3600, ge=10, description="Deadline of a deployed training or retraining run, from the moment it starts "
        "running: past it the run is cancelled (freeing the model's concurrency slot) and a notice is sent.")
    ingestion_timeout_seconds: int = Field(
        3600, ge=10, description="Deadline of a deployed ingestion run (cancelled and notified past it).")
    heartbeat_seconds: int = Field(
        60, ge=30, le=3600, description="Heartbeat interval of deployed runs; a run silent for two intervals plus "
        "ten seconds (its worker or pod was killed) is marked Crashed, which sends the failure notice.")
    ui_log_level: Literal["DEBUG", "INFO", "WARNING"] = Field(
        "INFO", description="Lowest level of the pipeline's own log records sent to each flow run's logs in Prefect.")


class NotificationsConfig(_Section):
    """Who hears about a failed deployed run."""

    webhook_url: str | None = Field(
        None, pattern=r"^(https?://\S+|env:[A-Za-z_][A-Za-z0-9_]*)$",
        description="URL that receives a JSON message (with a Slack-style 'text') when a deployed run fails, or "
        "env:NAME to read it from that environment variable at send time (keeps it out of run parameters); "
        "None: no message.")
    webhook_timeout_seconds: float = Field(10.0, gt=0.0, le=120.0, description="Timeout of the webhook request.")
    notification_block: str | None = Field(
        None, pattern=r"^[a-z0-9-]+/[a-z0-9-]+$",
        description="Prefect notification block ('slack-webhook/ops-alerts', 'email-server-credentials/...'), "
        "created in the Prefect UI, that also receives failure, crash and deadline notices.")


# Keys that moved to another section: still read from their old place, with a deprecation warning.
MOVED_KEYS = {
    ("registry", "tracking_uri"): "tracking", ("registry", "experiment"): "tracking",
    **{("registry", key): "promotion" for key in ("primary_metric", "min_metric", "min_improvement",
                                                  "max_class_regression", "require_significance",
                                                  "significance_level", "bootstrap_samples", "auto_promote")},
    ("retraining", "work_pool"): "deployment", ("retraining", "collision_strategy"): "deployment",
    ("retraining", "webhook_url"): "notifications", ("retraining", "webhook_timeout_seconds"): "notifications",
}


def move_deprecated_keys(raw: dict) -> list[str]:
    """Move keys given under their old section to their new one (in place); returns ``old -> new`` notes.

    A key given in both places keeps the new place's value.
    """
    moved = []
    for (old_section, key), new_section in MOVED_KEYS.items():
        section = raw.get(old_section)
        if isinstance(section, dict) and key in section:
            value = section.pop(key)
            target = raw.setdefault(new_section, {})
            if isinstance(target, dict):
                target.setdefault(key, value)
            moved.append(f"{old_section}.{key} -> {new_section}.{key}")
    return moved


class ScoringConfig(_Section):
    """Batch inference with the champion: inputs, outputs, speed, drift thresholds and the to-label file."""

    model_uri: str | None = Field(
        None,
        description="Model to score with: models:/NAME@ALIAS or models:/NAME/VERSION. "
        "None: models:/<registry.model_name>@champion, resolved at run time.")
    inputs: list[str] = Field(
        default_factory=list,
        description="Unlabeled files, folders or fsspec URLs to score. Empty: the workspace's inbox/ folder.")
    text_column: str | None = Field(None, description="Column holding the text. None: data.text_column.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = Field(
        "auto", description="Input format; auto picks it from the extension.")
    output_format: Literal["parquet", "csv"] = Field("parquet", description="Format of the predictions file.")
    top_k: int = Field(
        0, ge=0, le=100, description="Also write the k most likely labels and their probabilities (0: off).")
    batch_size: int = Field(64, ge=1, le=8192, description="Texts per forward pass (batches are sorted by length).")
    chunk_rows: int = Field(
        20_000, ge=1, le=10_000_000, description="Rows read, scored and written at a time (bounds memory).")
    max_attempts: int = Field(3, ge=1, le=100, description="Runs that may try a failing file before it is skipped.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available (bf16), else CPU.")
    drift: bool = Field(True, description="Compare each scored file with the model's training data (drift report).")
    drift_min_rows: int = Field(
        30, ge=1, description="Fewest rows for a drift verdict; smaller files are reported as skipped.")
    drift_reference_rows: int = Field(
        2000, ge=100, le=1_000_000, description="Training-snapshot rows sampled to build the drift reference.")
    drift_sample_rows: int = Field(
        100_000, ge=100, description="Most scored rows (a uniform sample) the drift checks look at.")
    length_ratio_warning: float = Field(
        1.5, gt=1.0, description="Mean token length this many times longer or shorter than the training data: "
            "warning.")
    length_ratio_error: float = Field(2.5, gt=1.0, description="Mean token length ratio that is an error.")
    unknown_share_warning: float = Field(
        0.01, ge=0.0, le=1.0, description="Unknown-token share above the training data's by more than this: warning.")
    unknown_share_error: float = Field(
        0.05, ge=0.0, le=1.0, description="Unknown-token share increase that is an error.")
    unseen_share_warning: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of word pieces never seen in the training sample, above its own level "
            "by more than this: warning.")
    unseen_share_error: float = Field(
        0.25, ge=0.0, le=1.0, description="Unseen word-piece share increase that is an error.")
    over_max_length_warning: float = Field(
        0.05, ge=0.0, le=1.0, description="Share of texts over model.max_length, above the training data's by more "
            "than this: warning.")
    over_max_length_error: float = Field(
        0.2, ge=0.0, le=1.0, description="Increase of the share over max_length that is an error.")
    label_kl_warning: float = Field(
        0.1, ge=0.0, description="KL divergence of predicted labels from the training labels: warning.")
    label_kl_error: float = Field(0.5, ge=0.0, description="KL divergence of predicted labels that is an error.")
    confidence_drop_warning: float = Field(
        0.1, ge=0.0, le=1.0, description="Mean confidence this much below the held-out training data's: warning.")
    confidence_drop_error: float = Field(0.2, ge=0.0, le=1.0, description="Mean confidence drop that is an error.")
    to_label_rows: int = Field(
        0, ge=0, le=1_000_000, description="Write the N texts the model is least sure of to to_label/ (0: off).")
    to_label_strategy: Literal["margin", "entropy"] = Field(
        "margin", description="Uncertainty: smallest top-2 margin or highest entropy.")
    schedule_cron: str | None = Field(
        "*/15 * * * *", pattern=r"^\s*\S+(\s+\S+){4,5}\s*$",
        description="Cron schedule of the batch-inference deployment; None: no schedule.")
    trigger_on_inbox_event: bool = Field(
        True,
        description="Also run batch inference on the event pipeline.inbox.arrived (emitted by whatever drops files).")


class PipelineConfig(_Section):
    """Everything one pipeline run needs; every field has an embedded default."""

    workspace: str | None = Field(None, description="State folder. None: $PIPELINE_HOME, else ./.pipeline.")
    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    retraining: RetrainingConfig = Field(default_factory=RetrainingConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)

    @model_validator(mode="before")
    @classmethod
    def _accept_moved_keys(cls, value: Any) -> Any:
        if isinstance(value, dict) and any(isinstance(value.get(s), dict) for s, _ in MOVED_KEYS):
            value = {k: dict(v) if isinstance(v, dict) else v for k, v in value.items()}
            for note in move_deprecated_keys(value):
                warnings.warn(f"configuration key {note}: the old name is read for one more release",
                              FutureWarning, stacklevel=2)
        return value

    @field_validator("workspace")
    @classmethod
    def _expand(cls, value: str | None) -> str | None:
        return str(Path(value).expanduser()) if value else value


# The run form's top-level choices (what a person starting a run changes most) and the keys they set.
RUN_OPTIONS = {"data_paths": ("data", "paths"), "base_model": ("model", "name_or_path"), "method": ("model", "method"),
               "epochs": ("training", "epochs"), "learning_rate": ("training", "learning_rate"),
               "promote": ("promotion", "auto_promote")}


def run_options_of(config: PipelineConfig) -> dict[str, Any]:
    """The run form's fields as ``config`` sets them (a deployment's form then shows these values)."""
    return {name: getattr(getattr(config, section), key) for name, (section, key) in RUN_OPTIONS.items()}


def with_run_options(config: PipelineConfig, **options: Any) -> PipelineConfig:
    """``config`` with the run form's choices applied (``RUN_OPTIONS``); None keeps the configured value.

    Raises pydantic's ValidationError for a value outside a key's bounds.
    """
    raw = config.model_dump()
    for name, value in options.items():
        if value is not None:
            section, key = RUN_OPTIONS[name]
            raw[section][key] = value
    return PipelineConfig.model_validate(raw)


class ConfigError(ValueError):
    """A configuration file, override or environment variable is invalid."""


def _parse_value(raw: str) -> Any:
    """Parse an override value as YAML so ``2``, ``true``, ``null`` and ``[a, b]`` get their types."""
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw


def _set_dotted(target: dict, dotted: str, value: Any) -> None:
    keys = [k for k in dotted.split(".") if k]
    if not keys:
        raise ConfigError(f"empty configuration key in override {dotted!r}")
    node = target
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def env_overrides(environ: dict[str, str] | None = None) -> list[str]:
    """``PIPELINE__TRAINING__EPOCHS=2`` becomes the override ``training.epochs=2``."""
    environ = os.environ if environ is None else environ
    return [
        f"{name[len(ENV_PREFIX):].lower().replace('__', '.')}={value}"
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX)
    ]


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    environ: dict[str, str] | None = None,
) -> PipelineConfig:
    """Build the configuration: defaults < YAML file < environment < ``--set KEY=VALUE`` overrides.

    Raises ConfigError naming the file or key at fault.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        raw = loaded or {}
    for item in [*env_overrides(environ), *(overrides or [])]:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        _set_dotted(raw, key.strip(), _parse_value(value.strip()))
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = f" (from {path})" if path else ""
        raise ConfigError(f"invalid configuration{source}: {where}: {first['msg']}") from exc
