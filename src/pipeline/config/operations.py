"""Configuration of what happens around a model: tracking, registry, promotion, retraining,
deployments, notifications and scoring."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.base import _Section


class TrackingConfig(_Section):
    """Where runs are recorded: the MLflow tracking server and experiment."""

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI. None: MLFLOW_TRACKING_URI, else SQLite in the workspace."
    )
    artifact_location: str | None = Field(
        None,
        description="Artifact location of a new experiment (e.g. s3://bucket/mlflow) when the tracking URI is a "
        "database or when a tracking server should not choose. None: the server's default, or the workspace's "
        "mlflow/artifacts folder for a database.",
    )
    experiment: str = Field("text-classification", min_length=1, description="MLflow experiment name.")
    ui_url: str | None = Field(
        None,
        pattern=r"^https?://\S+$",
        description="Address of the MLflow UI for links from Prefect runs and "
        "the command line. None: the tracking URI when it is an http(s) server, else no links.",
    )
    http_timeout_s: int = Field(15, ge=1, le=600, description="Seconds one MLflow HTTP request may wait for an answer.")
    http_max_retries: int = Field(
        3, ge=0, le=10, description="Retries of a failed MLflow HTTP request (backoff between)."
    )
    http_backoff_factor: int = Field(
        1,
        ge=0,
        le=30,
        description="Backoff between MLflow retries: factor x 1, 2, 4... seconds. The defaults give up "
        "on a dead tracking server within about a minute.",
    )


class RegistryConfig(_Section):
    """The MLflow Model Registry entry that versions are registered under."""

    model_name: str = Field("text-classifier", min_length=1, description="Registered model name.")


class PromotionConfig(_Section):
    """The promotion gate: when a new version becomes challenger, and champion."""

    primary_metric: Literal["accuracy", "macro_f1"] = Field(
        "macro_f1", description="Metric the promotion gate compares."
    )
    min_metric: float = Field(0.0, ge=0.0, le=1.0, description="Floor for any promotion, the first one included.")
    min_improvement: float = Field(
        0.0, ge=-1.0, le=1.0, description="Smallest gain over the champion to pass the gate."
    )
    max_class_regression: float = Field(
        0.05, ge=0.0, le=1.0, description="Largest per-class F1 drop allowed versus the champion."
    )
    require_significance: bool = Field(
        False, description="Require the gain to be significant (bootstrap CI and McNemar)."
    )
    significance_level: float = Field(0.05, gt=0.0, lt=0.5, description="Alpha for the significance tests.")
    bootstrap_samples: int = Field(1000, ge=100, le=100_000, description="Paired bootstrap resamples.")
    auto_promote: bool = Field(False, description="Make a challenger that passes the gate champion at once.")


class RetrainingConfig(_Section):
    """When scheduled retraining trains: how much new data, on which schedule, on which event."""

    min_new_rows: int = Field(
        1,
        ge=1,
        description="Fewest new labeled rows (pending in the landing zone, or ingested but not trained on "
        "yet) that make a retraining run train; fewer and it finishes at once with 'no new data'.",
    )
    schedule_cron: str = Field(
        "0 * * * *",
        pattern=r"^\s*\S+(\s+\S+){4,5}\s*$",
        description="Cron schedule of the retraining deployment (five fields; default: hourly, on the hour).",
    )
    timezone: str = Field("UTC", min_length=1, description="Time zone of the cron schedule (IANA name).")
    trigger_on_new_data: bool = Field(
        True, description="Also run retraining when ingestion announces a new snapshot (event pipeline.data.arrived)."
    )


class DeploymentConfig(_Section):
    """How deployed runs are executed and limited on a Prefect server."""

    work_pool: str = Field(
        "pipeline",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefect process work pool that runs the deployments (created when missing).",
    )
    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = Field(
        "ENQUEUE",
        description="A deployed training or retraining run started while another one of the same registered "
        "model is active: wait for the slot (ENQUEUE) or be cancelled (CANCEL_NEW).",
    )
    run_lock_wait_s: float = Field(
        0.0,
        ge=0.0,
        le=86_400.0,
        description="Seconds a run waits for another run of the same model and workspace "
        "to finish before it stops with 'another run ... is in progress' (0: stop at once).",
    )
    training_timeout_seconds: int = Field(
        6 * 3600,
        ge=10,
        description="Deadline of a deployed training or retraining run, from the moment it starts "
        "running: past it the run is cancelled (freeing the model's concurrency slot) and a notice is sent.",
    )
    ingestion_timeout_seconds: int = Field(
        3600, ge=10, description="Deadline of a deployed ingestion run (cancelled and notified past it)."
    )
    scoring_timeout_seconds: int = Field(
        2 * 3600, ge=10, description="Deadline of a deployed batch-inference run (cancelled and notified past it)."
    )
    heartbeat_seconds: int = Field(
        60,
        ge=30,
        le=3600,
        description="Heartbeat interval of deployed runs; a run silent for two intervals plus "
        "ten seconds (its worker or pod was killed) is marked Crashed, which sends the failure notice.",
    )
    ui_log_level: Literal["DEBUG", "INFO", "WARNING"] = Field(
        "INFO", description="Lowest level of the pipeline's own log records sent to each flow run's logs in Prefect."
    )


class NotificationsConfig(_Section):
    """Who hears about a failed deployed run."""

    webhook_url: str | None = Field(
        None,
        pattern=r"^(https?://\S+|env:[A-Za-z_][A-Za-z0-9_]*)$",
        description="URL that receives a JSON message (with a Slack-style 'text') when a deployed run fails, or "
        "env:NAME to read it from that environment variable at send time (keeps it out of run parameters); "
        "None: no message.",
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0.0, le=120.0, description="Timeout of the webhook request.")
    notification_block: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]+/[a-z0-9-]+$",
        description="Prefect notification block ('slack-webhook/ops-alerts', 'email-server-credentials/...'), "
        "created in the Prefect UI, that also receives failure, crash and deadline notices.",
    )


class ScoringConfig(_Section):
    """Batch inference with the champion: inputs, outputs, speed, drift thresholds and the to-label file."""

    model_uri: str | None = Field(
        None,
        description="Model to score with: models:/NAME@ALIAS or models:/NAME/VERSION. "
        "None: models:/<registry.model_name>@champion, resolved at run time.",
    )
    inputs: list[str] = Field(
        default_factory=list,
        description="Unlabeled files, folders or fsspec URLs to score. Empty: the workspace's inbox/ folder.",
    )
    text_column: str | None = Field(None, description="Column holding the text. None: data.text_column.")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = Field(
        "auto", description="Input format; auto picks it from the extension."
    )
    output_format: Literal["parquet", "csv"] = Field("parquet", description="Format of the predictions file.")
    top_k: int = Field(
        0, ge=0, le=100, description="Also write the k most likely labels and their probabilities (0: off)."
    )
    batch_size: int = Field(64, ge=1, le=8192, description="Texts per forward pass (batches are sorted by length).")
    chunk_rows: int = Field(
        20_000, ge=1, le=10_000_000, description="Rows read, scored and written at a time (bounds memory)."
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Runs that may try a failing file before it is skipped.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available (bf16), else CPU.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Compute precision of scoring. auto: bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16 "
        "or AMX, about twice as fast as fp32 there), fp32 elsewhere; fp32: always fp32; bf16: always bf16.",
    )
    drift: bool = Field(True, description="Compare each scored file with the model's training data (drift report).")
    drift_min_rows: int = Field(
        30, ge=1, description="Fewest rows for a drift verdict; smaller files are reported as skipped."
    )
    drift_reference_rows: int = Field(
        2000, ge=100, le=1_000_000, description="Training-snapshot rows sampled to build the drift reference."
    )
    drift_sample_rows: int = Field(
        100_000, ge=100, description="Most scored rows (a uniform sample) the drift checks look at."
    )
    length_ratio_warning: float = Field(
        1.5, gt=1.0, description="Mean token length this many times longer or shorter than the training data: warning."
    )
    length_ratio_error: float = Field(2.5, gt=1.0, description="Mean token length ratio that is an error.")
    unknown_share_warning: float = Field(
        0.01, ge=0.0, le=1.0, description="Unknown-token share above the training data's by more than this: warning."
    )
    unknown_share_error: float = Field(
        0.05, ge=0.0, le=1.0, description="Unknown-token share increase that is an error."
    )
    unseen_share_warning: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of word pieces never seen in the training sample, above its own level "
        "by more than this: warning.",
    )
    unseen_share_error: float = Field(
        0.25, ge=0.0, le=1.0, description="Unseen word-piece share increase that is an error."
    )
    over_max_length_warning: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Share of texts over model.max_length, above the training data's by more than this: warning.",
    )
    over_max_length_error: float = Field(
        0.2, ge=0.0, le=1.0, description="Increase of the share over max_length that is an error."
    )
    label_kl_warning: float = Field(
        0.1, ge=0.0, description="KL divergence of predicted labels from the training labels: warning."
    )
    label_kl_error: float = Field(0.5, ge=0.0, description="KL divergence of predicted labels that is an error.")
    confidence_drop_warning: float = Field(
        0.1, ge=0.0, le=1.0, description="Mean confidence this much below the held-out training data's: warning."
    )
    confidence_drop_error: float = Field(0.2, ge=0.0, le=1.0, description="Mean confidence drop that is an error.")
    to_label_rows: int = Field(
        0, ge=0, le=1_000_000, description="Write the N texts the model is least sure of to to_label/ (0: off)."
    )
    to_label_strategy: Literal["margin", "entropy"] = Field(
        "margin", description="Uncertainty: smallest top-2 margin or highest entropy."
    )
    schedule_cron: str | None = Field(
        "*/15 * * * *",
        pattern=r"^\s*\S+(\s+\S+){4,5}\s*$",
        description="Cron schedule of the batch-inference deployment; None: no schedule.",
    )
    trigger_on_inbox_event: bool = Field(
        True,
        description="Also run batch inference on the event pipeline.inbox.arrived (emitted by whatever drops files).",
    )
