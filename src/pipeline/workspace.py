"""The workspace: one folder that holds all of the pipeline's state, and the process environment it needs.

Layout under the workspace root::

    landing/      files dropped here are ingested by the next run
    quarantine/   files refused by the parser or the data contract, each with a report
    snapshots/    immutable, content-addressed data snapshots (Parquet + manifest.json)
    ledger/       one JSON record per file ever seen
    cache/        tokenized datasets, keyed by content
    checkpoints/  resumable training checkpoints
    runs/         per-run outputs (plots, reports, the trained model before registration)
    reports/      Great Expectations Data Docs
    mlflow/       mlflow.db (SQLite tracking + registry) and artifacts/
    prefect/      PREFECT_HOME (the ephemeral server's database)

In a team the data part (landing, snapshots, quarantine) can live elsewhere: ``storage`` names a shared folder
or an object-storage URL (``pipeline.storage``), and ``ledger_url`` a database for the ledger and the locks
(``pipeline.data.ledger``, ``pipeline.data.db_lock``). The rest stays on the worker's disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.storage import DataPath, data_root, is_remote

# Offline-friendly defaults measured on these machines (see shared/docs/stack-notes.md); a value the
# user already set always wins.
OFFLINE_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # Deadlines for the Prefect API (a server that is gone fails a call within about a minute, not many)
    "PREFECT_API_REQUEST_TIMEOUT": "20",
    "PREFECT_CLIENT_MAX_RETRIES": "3",
}


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace; creating the object touches nothing, ``ensure()`` makes the folders."""

    root: Path
    storage: str | None = None
    ledger_url: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def resolve(
        cls, explicit: str | os.PathLike | None = None, storage: str | None = None, ledger_url: str | None = None
    ) -> Workspace:
        """The workspace named explicitly, else ``$PIPELINE_HOME``, else ``./.pipeline`` (made absolute)."""
        chosen = explicit or os.environ.get("PIPELINE_HOME") or ".pipeline"
        return cls(Path(chosen).expanduser().resolve(), storage or None, ledger_url or None)

    @classmethod
    def for_config(cls, config) -> Workspace:
        """The workspace of a ``PipelineConfig``, with its data storage and ledger database."""
        return cls.resolve(config.workspace, config.data.storage, config.data.ledger_url)

    @property
    def data_root(self) -> DataPath:
        """Landing zone, snapshots and quarantine: ``storage`` when set, else the workspace folder."""
        return data_root(self.storage, self.root)

    @property
    def data_is_remote(self) -> bool:
        return is_remote(self.data_root)

    @property
    def landing(self) -> DataPath:
        return self.data_root / "landing"

    @property
    def quarantine(self) -> DataPath:
        return self.data_root / "quarantine"

    @property
    def snapshots(self) -> DataPath:
        return self.data_root / "snapshots"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def lock_file(self) -> Path:
        return self.root / ".data.lock"

    def ensure(self) -> Workspace:
        for path in (
            self.landing,
            self.quarantine,
            self.snapshots,
            self.ledger,
            self.cache,
            self.checkpoints,
            self.runs,
            self.reports,
            self.mlflow_dir / "artifacts",
            self.prefect_home,
        ):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def default_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def artifact_root(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()

    def tracking_uri(self, configured: str | None = None) -> str:
        """Configured URI, else ``$MLFLOW_TRACKING_URI``, else the workspace's SQLite file."""
        return configured or os.environ.get("MLFLOW_TRACKING_URI") or self.default_tracking_uri()


def apply_environment_defaults(workspace: Workspace | None = None, environ: dict | None = None) -> dict[str, str]:
    """Set offline defaults (and PREFECT_HOME inside the workspace) where the user set nothing.

    Returns what was set. Must run before prefect or mlflow are imported to take full effect.
    """
    environ = os.environ if environ is None else environ
    wanted = dict(OFFLINE_DEFAULTS)
    if workspace is not None:
        wanted["PREFECT_HOME"] = str(workspace.prefect_home)
    applied = {}
    for key, value in wanted.items():
        if key not in environ:
            environ[key] = value
            applied[key] = value
    return applied


def prepare_workspace(config) -> Workspace:
    """Resolve and create ``config.workspace`` and set the offline environment defaults."""
    workspace = Workspace.for_config(config).ensure()
    apply_environment_defaults(workspace)
    return workspace
