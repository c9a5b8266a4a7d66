"""``PipelineConfig``: every section in one model (the flows' parameter), renamed keys, the run form's options."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import _Section
from pipeline.config.operations import (
    DeploymentConfig,
    NotificationsConfig,
    PromotionConfig,
    RegistryConfig,
    RetrainingConfig,
    ScoringConfig,
    TrackingConfig,
)
from pipeline.config.stages import DataConfig, ModelConfig, TrainingConfig, ValidationConfig

# Keys that moved to another section: still read from their old place, with a deprecation warning.
MOVED_KEYS = {
    ("registry", "tracking_uri"): "tracking",
    ("registry", "experiment"): "tracking",
    **{("registry", key): "promotion" for key in PromotionConfig.model_fields},  # the gate had lived in registry
    ("retraining", "work_pool"): "deployment",
    ("retraining", "collision_strategy"): "deployment",
    ("retraining", "webhook_url"): "notifications",
    ("retraining", "webhook_timeout_seconds"): "notifications",
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
                warnings.warn(
                    f"configuration key {note}: the old name is read for one more release", FutureWarning, stacklevel=2
                )
        return value

    @field_validator("workspace")
    @classmethod
    def _expand(cls, value: str | None) -> str | None:
        return str(Path(value).expanduser()) if value else value


# The run form's top-level choices (what a person starting a run changes most) and the keys they set.
RUN_OPTIONS = {
    "data_paths": ("data", "paths"),
    "base_model": ("model", "name_or_path"),
    "method": ("model", "method"),
    "epochs": ("training", "epochs"),
    "learning_rate": ("training", "learning_rate"),
    "promote": ("promotion", "auto_promote"),
}


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
