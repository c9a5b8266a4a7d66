"""A throwaway PostgreSQL server for integration tests: ``initdb`` + ``pg_ctl`` in a temporary folder on a free
port of 127.0.0.1, stopped and removed afterwards.

``initdb`` refuses to run as root, so under root the server runs as ``nobody`` in a folder that user owns.
Binaries come from ``$PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin`` (Debian ``postgresql``), else PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.integration.prefect_stack import free_port

SUPERUSER = "postgres"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates = [Path(os.environ["PG_BIN"])] if os.environ.get("PG_BIN") else []
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )
    candidates += list(reversed(debian))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    user: str | None  # the OS user the server runs as (None: this process's user)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str, driver: str = "postgresql") -> str:
        """SQLAlchemy URL of ``database``: ``postgresql`` (psycopg, MLflow) or ``postgresql+asyncpg`` (Prefect)."""
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs = {"user": self.user} if self.user else {}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": str(self.root)}
        done = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.root,
            **kwargs,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n{tail}")
        return done

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = find_binaries()
        if bin_dir is None:
            raise FileNotFoundError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; install the "
                "Debian package `postgresql` or set PG_BIN"
            )
        # Not under pytest's tmp_path: its parent is private to root, and the server may run as nobody.
        root = Path(tempfile.mkdtemp(prefix="pg-test-"))
        user = "nobody" if os.geteuid() == 0 else None
        if user:
            shutil.chown(root, user=user)
        server = cls(bin_dir, root, free_port(), user)
        try:
            server._run(
                "initdb", "-D", str(server.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"
            )
            options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            server._run(
                "pg_ctl",
                "-D",
                str(server.data_dir),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name, timeout=60)

    def query(self, database: str, sql: str) -> list[tuple]:
        """Rows of ``sql`` (through psycopg, the driver SQLAlchemy 2.1 picks for ``postgresql://``)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database, connect_timeout=10
        ) as connection:
            return connection.execute(sql).fetchall()

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
