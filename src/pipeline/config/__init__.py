"""Typed pipeline configuration: embedded defaults, YAML files, ``--set`` overrides and environment.

The same ``PipelineConfig`` model is the Prefect flows' parameter, so the Prefect UI renders it as a typed
form with the descriptions and bounds declared in the section modules. Importing this package imports
pydantic and PyYAML only.
"""

from pipeline.config.base import MISSING_LABEL_MARKERS, PACKAGED_MODEL
from pipeline.config.loading import ENV_PREFIX, ConfigError, env_overrides, load_config
from pipeline.config.model import (
    MOVED_KEYS,
    RUN_OPTIONS,
    PipelineConfig,
    move_deprecated_keys,
    run_options_of,
    with_run_options,
)
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

__all__ = [
    "ENV_PREFIX",
    "MISSING_LABEL_MARKERS",
    "MOVED_KEYS",
    "PACKAGED_MODEL",
    "RUN_OPTIONS",
    "ConfigError",
    "DataConfig",
    "DeploymentConfig",
    "ModelConfig",
    "NotificationsConfig",
    "PipelineConfig",
    "PromotionConfig",
    "RegistryConfig",
    "RetrainingConfig",
    "ScoringConfig",
    "TrackingConfig",
    "TrainingConfig",
    "ValidationConfig",
    "env_overrides",
    "load_config",
    "move_deprecated_keys",
    "run_options_of",
    "with_run_options",
]
