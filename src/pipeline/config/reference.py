"""``docs/configuration.md``: every configuration key with its default and description, from the model.

Regenerate with ``python -m pipeline.config.reference > docs/configuration.md`` (a test keeps it current).
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from pipeline.config import MOVED_KEYS, RUN_OPTIONS, PipelineConfig
from pipeline.markdown import markdown_table

INTRO = """# Configuration reference

Generated from `src/pipeline/config/` by `python -m pipeline.config.reference`; do not edit by hand.

Sources, later ones winning: the embedded defaults below; a YAML file (`--config FILE`, sections as below);
environment variables `PIPELINE__SECTION__KEY=value`; `--set section.key=value` (values parsed as YAML).
The same model is the flows' `config` parameter ("Advanced settings" in the Prefect run form).
"""


def _default(field) -> str:
    value = field.get_default(call_default_factory=True)
    return "none" if value is None else f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def render_reference() -> str:
    """The whole reference page as Markdown."""
    parts = [
        INTRO,
        "## Run form",
        "The training deployment's form puts these first; an empty field keeps the value configured below.",
        markdown_table(
            [[f"`{name}`", f"`{'.'.join(key)}`"] for name, key in RUN_OPTIONS.items()], ["form field", "sets"]
        ),
    ]
    top = [
        [f"`{name}`", _default(field), field.description or ""]
        for name, field in PipelineConfig.model_fields.items()
        if not _is_section(field)
    ]
    parts += ["## Top level", markdown_table(top, ["key", "default", "meaning"])]
    for name, field in PipelineConfig.model_fields.items():
        if _is_section(field):
            model = field.annotation
            rows = [
                [f"`{name}.{key}`", _default(sub), (sub.description or "").replace("\n", " ")]
                for key, sub in model.model_fields.items()
            ]
            parts += [
                f"## `{name}`",
                (model.__doc__ or "").strip(),
                markdown_table(rows, ["key", "default", "meaning"]),
            ]
    moved = [[f"`{old}.{key}`", f"`{new}.{key}`"] for (old, key), new in MOVED_KEYS.items()]
    parts += [
        "## Renamed keys",
        "Still read from their old place, with a warning, for one more release.",
        markdown_table(moved, ["old key", "new key"]),
    ]
    return "\n\n".join(part.strip() for part in parts) + "\n"


def _is_section(field) -> bool:
    return isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)


if __name__ == "__main__":
    print(render_reference(), end="")
