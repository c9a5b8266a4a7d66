"""The base of every configuration section, and constants they share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

PACKAGED_MODEL = "packaged:all-minilm-l6-v2"
MISSING_LABEL_MARKERS = ("None", "null", "NaN", "NA", "N/A", "nil", "#N/A", "undefined")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
