"""Configuration of the stages that build a model: data, validation, model, training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import MISSING_LABEL_MARKERS, PACKAGED_MODEL, _Section


class DataConfig(_Section):
    """Where labeled files come from and how they are read and split."""

    paths: list[str] = Field(
        default_factory=list,
        description="Labeled files, folders or fsspec URLs to ingest. Empty: the landing zone, or the demo data when "
        "that is empty too.",
    )
    text_column: str = Field("text", description="Column holding the text.")
    label_column: str = Field("label", description="Column holding the label (string or integer).")
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = Field(
        "auto", description="File format; auto picks it from the file extension (.gz allowed)."
    )
    encoding: str = Field("utf-8", description="Text encoding of CSV/TSV/JSONL files (a BOM is accepted).")
    read_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Tries to read a file before an I/O error (not a parse "
        "error) quarantines it as unreadable; waits double between tries.",
    )
    read_retry_delay_s: float = Field(0.5, ge=0.0, le=60.0, description="Wait before the second try to read a file.")
    quoting: Literal["strict", "none"] = Field(
        "strict",
        description="CSV/TSV quoting: strict (RFC 4180; an unbalanced quote refuses the file) or none "
        "(every field literal, for exports that never quote).",
    )
    validation_share: float = Field(0.1, ge=0.0, le=0.5, description="Share of texts in the validation split.")
    test_share: float = Field(0.1, gt=0.0, le=0.5, description="Share of texts in the frozen test split.")
    split_salt: str = Field(
        "v1", description="Salt of the text hash that assigns splits; changing it reshuffles every split."
    )
    holdout: str | None = Field(None, description="Optional labeled file that is always the test split.")
    conflict_policy: Literal["drop", "latest", "fail"] = Field(
        "drop", description="Same normalised text with different labels: drop both, keep the latest, or fail."
    )
    max_conflict_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Fail the batch when conflicting rows exceed this share of it."
    )
    max_samples: int | None = Field(None, ge=1, description="Cap on the rows used (smoke tests); None uses all.")
    chunk_rows: int = Field(
        20_000, ge=1, le=10_000_000, description="Rows parsed at a time while reading a file (bounds memory)."
    )
    max_rows_in_memory: int = Field(
        250_000,
        ge=1_000,
        description="Largest snapshot deduplicated in memory; larger ones are partitioned on disk by text hash.",
    )
    hf_split: str = Field(
        "train", min_length=1, description="Split read from hf:NAME[:CONFIG] sources ('train+validation' joins splits)."
    )
    allowed_url_schemes: list[str] = Field(
        default_factory=lambda: ["file", "hf"],
        description="URL schemes data.paths may name (local paths are 'file'). Add e.g. 's3' or 'https' to fetch "
        "remote data.",
    )
    allowed_url_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts (or buckets) remote data.paths may name; empty: any host of an allowed scheme.",
    )
    lock_timeout_s: float = Field(
        600.0, ge=0.0, description="Seconds an ingest waits for another one to finish before giving up (DataStoreBusy)."
    )
    storage: str | None = Field(
        None,
        description="Where the landing zone, snapshots and quarantine live: a shared folder or an fsspec URL "
        "(s3://bucket/prefix, gs://...; credentials from the environment). Empty: the workspace folder.",
    )
    ledger_url: str | None = Field(
        None,
        description="Database of the ledger and the data and run locks: postgresql://user@host/db (password from "
        "PGPASSWORD or ~/.pgpass, or env:NAME for a variable holding the whole URL) or sqlite:///path. Empty: "
        "ledger/ledger.sqlite in the workspace with file locks. Required when data.storage is object storage.",
    )

    @field_validator("storage", "ledger_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None  # an empty environment variable (PIPELINE__DATA__STORAGE=) means the default

    @model_validator(mode="after")
    def _shared_ledger_for_shared_storage(self):
        from pipeline.storage import is_remote_url

        if is_remote_url(self.storage) and not self.ledger_url:
            raise ValueError(
                f"data.storage is object storage ({self.storage}): set data.ledger_url to a database every worker "
                "reaches (postgresql://...); a ledger in a worker's own folder would let two workers ingest the "
                "same files"
            )
        if self.ledger_url and not self.ledger_url.startswith(("postgresql", "postgres://", "sqlite:///", "env:")):
            raise ValueError("data.ledger_url must start with postgresql://, sqlite:/// or env:")
        return self


class ValidationConfig(_Section):
    """The data contract applied to every batch before anything trains on it (see expectations/README.md)."""

    suite: str = Field(
        "labeled_text",
        description="Batch expectation suite: a name under expectations/suites/ or a path to a suite JSON file.",
    )
    extra_suites: list[str] = Field(
        default_factory=list,
        description="More suite files (names or paths) whose expectations are added to the suite; "
        "one with the same meta.rule as a built-in expectation replaces it.",
    )
    snapshot_suite: str = Field(
        "labeled_text_snapshot", description="Suite run on the class balance of the resulting snapshot (name or path)."
    )
    severity: dict[str, Literal["error", "warning", "off"]] = Field(
        default_factory=dict,
        description="Per-rule severity override, e.g. {label_drift: error, duplicate_rows: off}; "
        "error stops the run, warning is reported.",
    )
    allowed_labels: list[str] | None = Field(
        None, description="Allowed labels. None: the labels of the current snapshot (the first accepted one sets them)."
    )
    missing_label_markers: list[str] = Field(
        default_factory=lambda: list(MISSING_LABEL_MARKERS),
        description="Label values that mean 'missing' (compared case-insensitively): rows holding them are refused.",
    )
    allow_new_labels: bool = Field(
        False, description="Accept labels not seen in the current snapshot (ignored when allowed_labels is set)."
    )
    min_text_length: int = Field(1, ge=1, description="Shortest allowed text, in characters (after stripping).")
    max_text_length: int = Field(10_000, ge=1, description="Longest allowed text, in characters.")
    max_duplicate_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Highest share of exact duplicate (text, label) rows in a batch. Real corpora "
        "hold under 1% (SST-2 train 0.5%); a file appended to itself holds 50%.",
    )
    max_leakage_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Highest share of new rows whose normalised text is in the frozen test split. "
        "Organic repeats stay near 1%; re-sent old data repeats about data.test_share of its rows.",
    )
    min_examples_per_class: int = Field(2, ge=1, description="Fewest examples each class needs in a snapshot.")
    max_class_share: float = Field(0.98, gt=0.0, le=1.0, description="Highest share one class may take of a snapshot.")
    max_label_drift_kl: float = Field(
        0.5, ge=0.0, description="KL divergence of the batch's label distribution from the snapshot's."
    )
    max_truncated_share: float = Field(
        0.05, ge=0.0, le=1.0, description="Highest share of rows longer than model.max_length tokens."
    )
    max_unknown_token_share: float = Field(
        0.05, ge=0.0, le=1.0, description="Highest mean share of unknown tokens per row."
    )
    max_control_char_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Highest share of rows holding control characters."
    )
    token_check_rows: int | None = Field(
        10_000,
        ge=100,
        description="Tokenizer checks look at a seeded random sample of this many rows (plus every row "
        "without a letter or digit, for the empty-after-tokenization check); None tokenizes every row.",
    )
    data_docs: bool = Field(
        True, description="Write Great Expectations Data Docs (offline HTML) under the workspace's reports/."
    )


class ModelConfig(_Section):
    """Which pretrained transformer to fine-tune, and how."""

    name_or_path: str = Field(
        PACKAGED_MODEL,
        description=f"Hugging Face model id or local folder; '{PACKAGED_MODEL}' is the MiniLM shipped with the "
        "install.",
    )
    max_length: int = Field(128, ge=8, le=8192, description="Longest input in tokens; longer texts are truncated.")
    method: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA adapters (peft).")
    lora_r: int = Field(8, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling.")
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="LoRA dropout.")
    warm_start: bool = Field(False, description="Start from the current champion's weights instead of the base model.")
    pooling: Literal["auto", "pooler", "cls", "mean", "max"] = Field(
        "pooler",
        description="What the classification head reads: pooler is the architecture's [CLS] pooler (the "
        "measured default); auto takes the checkpoint's sentence-transformers pooling (mean for the packaged MiniLM), "
        "which learned faster in selection runs but once collapsed at the default learning rates; cls is the raw "
        "[CLS] vector. A warm start keeps the pooling the champion was trained with.",
    )


class TrainingConfig(_Section):
    """The fine-tuning loop."""

    epochs: int = Field(3, ge=1, le=100, description="Passes over the training split.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    batch_size: int = Field(32, ge=1, le=4096, description="Examples per micro-batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=256, description="Micro-batches per optimizer step.")
    eval_batch_size: int = Field(128, ge=1, le=8192, description="Examples per evaluation batch.")
    learning_rate: float = Field(
        1e-4,
        gt=0.0,
        le=1.0,
        description="Peak learning rate of AdamW for the pretrained "
        "body (1e-4 suits small models like the packaged MiniLM; use 2e-5 to 5e-5 for base/large ones).",
    )
    head_learning_rate_factor: float = Field(
        100.0,
        ge=1.0,
        le=1000.0,
        description="The newly initialised classification head learns this many times "
        "faster than the pretrained body (a fresh head at the body's rate needs many steps to separate classes); "
        "1 disables. Not applied to a warm start, whose head is trained.",
    )
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
        None,
        ge=16,
        description="Batch by tokens instead of rows: each batch holds up to this many padded tokens "
        "(length-grouped; batch_size is then unused). On a GPU it keeps short texts from leaving it launch-bound.",
    )
    early_stopping_patience: int | None = Field(
        2, ge=1, description="Epochs without improvement before stopping; None disables."
    )
    metric_for_best: Literal["accuracy", "macro_f1"] = Field(
        "macro_f1", description="Validation metric that picks the best epoch."
    )
    checkpoint_steps: int = Field(
        200, ge=1, description="Write a resumable checkpoint every this many optimizer steps."
    )
    keep_checkpoints: int = Field(2, ge=1, le=100, description="How many recent checkpoints to keep.")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads; None keeps torch's default.")
    resume_from: str | None = Field(
        None,
        description="Checkpoint folder to resume from (refused when made by another configuration or data). "
        "None: the newest matching checkpoint in the workspace, if any.",
    )
    num_processes: int | Literal["auto"] = Field(
        1,
        description="Data-parallel training processes on this machine (launched with torchrun; NCCL on GPUs, gloo "
        "on CPU). auto: one per visible GPU (1 without one). The global batch stays training.batch_size.",
    )
    num_nodes: int = Field(
        1,
        ge=1,
        le=1024,
        description="Machines taking part in one training run (each runs "
        "num_processes); more than 1 needs training.rdzv_endpoint and a workspace shared by all.",
    )
    rdzv_endpoint: str | None = Field(
        None,
        pattern=r"^\S+:\d+$",
        description="host:port of the torchrun c10d rendezvous for several nodes "
        "(the machine of the flow run hosts it; the other nodes join with the same endpoint).",
    )
    collective_timeout_s: float = Field(
        600.0,
        ge=10.0,
        le=86_400.0,
        description="Seconds a process waits in a collective for the others before the "
        "step fails (a hung or lost rank never hangs the run).",
    )

    @field_validator("num_processes")
    @classmethod
    def _check_processes(cls, value: int | str) -> int | str:
        if value != "auto" and not 1 <= int(value) <= 1024:
            raise ValueError("must be auto or an integer from 1 to 1024")
        return value
