"""The ledger of every file seen, in SQLite (stdlib ``sqlite3``, WAL): appended to, never rewritten whole.

One file, ``ledger/ledger.sqlite``, with four tables:
``files``     one row per content hash: status (accepted / quarantined), uris, size, rows, snapshot, time;
``seen``      the last size, mtime and hash of every URI, so unchanged files are never hashed again;
``events``    one row per file the first time each URI was seen with each content (append-only);
``snapshots`` every snapshot id in order; the last is the head.

Writes happen inside ``transaction()`` (``BEGIN IMMEDIATE``; one per stage and one per commit), so a
crash leaves the ledger as it was before. A ``ledger.json`` from earlier versions is imported on first
use and renamed ``ledger.json.migrated``.

With ``data.ledger_url`` the same tables live in a database every worker reaches: PostgreSQL (schema
``pipeline_ledger``, through ``psycopg``, with connect and statement deadlines) or another SQLite file. The
ledger remembers which data storage it belongs to and refuses to serve another, so two workspaces never mix
their histories.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from pipeline.secrets import redact_credentials, resolve_secret

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (sha256 TEXT PRIMARY KEY, status TEXT NOT NULL, uris TEXT NOT NULL, size INTEGER,
    rows INTEGER, snapshot TEXT, time TEXT, reason TEXT, report TEXT);
CREATE TABLE IF NOT EXISTS seen (uri TEXT PRIMARY KEY, size INTEGER, mtime REAL, sha256 TEXT);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT, uri TEXT, sha256 TEXT,
    size INTEGER, rows INTEGER, status TEXT, snapshot TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS files_status ON files (status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
POSTGRES_SCHEMA = (
    SCHEMA.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    .replace("sha256 TEXT PRIMARY KEY,", "sha256 TEXT PRIMARY KEY, seq BIGSERIAL,")
    .replace("size INTEGER", "size BIGINT")
    .replace("mtime REAL", "mtime DOUBLE PRECISION")
)
POSTGRES_NAMESPACE = "pipeline_ledger"
FILE_FIELDS = ("sha256", "status", "uris", "size", "rows", "snapshot", "time", "reason", "report")
EVENT_FIELDS = ("time", "uri", "sha256", "size", "rows", "status", "snapshot", "reason")


class Ledger:
    """Files, URIs seen, events and snapshot history of one workspace."""

    def __init__(self, folder: Path, timeout_s: float = 60.0, url: str | None = None, storage: str | None = None):
        self.folder = Path(folder)
        self.url = resolve_secret(url) if url else None
        self.postgres = bool(self.url) and self.url.startswith("postgres")
        if self.url and not self.postgres:
            self.path = Path(self.url.removeprefix("sqlite:///")).expanduser()
            self.folder = self.path.parent
        else:
            self.path = self.folder / "ledger.sqlite"
        self.storage = storage
        self.timeout_s = timeout_s
        self._connection = None

    def describe(self) -> str:
        """Where the ledger lives, without credentials (for messages)."""
        return redact_credentials(self.url) if self.postgres else str(self.path)

    # -- connection ------------------------------------------------------------------------------
    def _connect(self):
        if self._connection is None and self.postgres:
            from pipeline.data.db_lock import postgres_connect

            self._connection = PostgresLedgerConnection(postgres_connect(self.url, "ledger", self.timeout_s))
            self._check_storage()
        if self._connection is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(SCHEMA)
            self._connection = connection
            self._migrate_json()
            self._check_storage()
        return self._connection

    def _check_storage(self) -> None:
        """Record the data storage this ledger serves on first use; refuse another one later."""
        if self.storage is None:
            return
        with self.transaction():
            row = self._connection.execute("SELECT value FROM meta WHERE key = 'storage'").fetchone()
            if row is None:
                self._connection.execute("INSERT INTO meta (key, value) VALUES ('storage', ?)", (self.storage,))
        if row is not None and row[0] != self.storage:
            self.close()
            raise RuntimeError(
                f"the ledger at {self.describe()} belongs to the data storage {row[0]}, not {self.storage}: "
                "give each data storage its own ledger database"
            )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextmanager
    def transaction(self):
        """All writes inside commit together or not at all."""
        connection = self._connect()
        connection.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _migrate_json(self) -> None:
        if self.url:
            return
        legacy = self.folder / "ledger.json"
        if not legacy.exists():
            return
        data = json.loads(legacy.read_text(encoding="utf-8"))
        with self.transaction():
            for record in data.get("files", {}).values():
                self.put_file(record)
            for uri, seen in data.get("seen", {}).items():
                self.set_seen(uri, seen["size"], seen["mtime"], seen["sha256"])
            for event in data.get("events", []):
                self.add_event(event)
            for snapshot_id in data.get("history", []):
                self.add_snapshot(snapshot_id)
            if data.get("head") and self.head() != data["head"]:
                self.add_snapshot(data["head"])
        legacy.rename(legacy.with_name("ledger.json.migrated"))
        logger.info("migrated %s into %s (%d files)", legacy, self.path, len(data.get("files", {})))

    @property
    def _order(self) -> str:
        return "seq" if self.postgres else "rowid"

    # -- reads -----------------------------------------------------------------------------------
    def file(self, sha256: str) -> dict | None:
        row = self._connect().execute("SELECT * FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return _file_record(row) if row else None

    def seen(self, uri: str) -> dict | None:
        row = self._connect().execute("SELECT size, mtime, sha256 FROM seen WHERE uri = ?", (uri,)).fetchone()
        return dict(row) if row else None

    def all_seen(self) -> dict[str, dict]:
        rows = self._connect().execute("SELECT uri, size, mtime, sha256 FROM seen").fetchall()
        return {row["uri"]: {"size": row["size"], "mtime": row["mtime"], "sha256": row["sha256"]} for row in rows}

    def known_hashes(self) -> set[str]:
        return {row[0] for row in self._connect().execute("SELECT sha256 FROM files")}

    def accepted_hashes(self) -> list[str]:
        """Hashes of accepted files, in the order they were recorded."""
        query = f"SELECT sha256 FROM files WHERE status = 'accepted' ORDER BY {self._order}"
        return [row[0] for row in self._connect().execute(query)]

    def head(self) -> str | None:
        row = self._connect().execute("SELECT id FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def history(self) -> list[str]:
        return [row[0] for row in self._connect().execute("SELECT id FROM snapshots ORDER BY seq")]

    def events(self, limit: int | None = None) -> list[dict]:
        query = "SELECT time, uri, sha256, size, rows, status, snapshot, reason FROM events ORDER BY id"
        rows = self._connect().execute(query + (f" DESC LIMIT {int(limit)}" if limit else "")).fetchall()
        events = [dict(row) for row in rows]
        return events[::-1] if limit else events

    def as_dict(self) -> dict:
        """Everything in the shape of the former ``ledger.json`` (files, seen, events, head, history)."""
        rows = self._connect().execute(f"SELECT * FROM files ORDER BY {self._order}").fetchall()
        return {
            "files": {row["sha256"]: _file_record(row) for row in rows},
            "seen": self.all_seen(),
            "events": self.events(),
            "head": self.head(),
            "history": self.history(),
        }

    # -- writes (inside ``transaction()``) -------------------------------------------------------
    def put_file(self, record: dict) -> None:
        values = {k: record.get(k) for k in FILE_FIELDS}
        values["uris"] = json.dumps(values["uris"] or [])
        self._connect().execute(
            f"INSERT INTO files ({', '.join(FILE_FIELDS)}) VALUES ({', '.join('?' * len(FILE_FIELDS))}) "
            f"ON CONFLICT (sha256) DO UPDATE SET {', '.join(f'{k} = excluded.{k}' for k in FILE_FIELDS[1:])}",
            [values[k] for k in FILE_FIELDS],
        )

    def add_uri(self, sha256: str, uri: str) -> None:
        record = self.file(sha256)
        if record is not None and uri not in record["uris"]:
            self._connect().execute(
                "UPDATE files SET uris = ? WHERE sha256 = ?", (json.dumps(record["uris"] + [uri]), sha256)
            )

    def set_seen(self, uri: str, size: int, mtime: float | None, sha256: str) -> None:
        self._connect().execute(
            "INSERT INTO seen (uri, size, mtime, sha256) VALUES (?, ?, ?, ?) ON CONFLICT (uri) DO UPDATE SET "
            "size = excluded.size, mtime = excluded.mtime, sha256 = excluded.sha256",
            (uri, size, mtime, sha256),
        )

    def forget_seen(self, uri: str) -> None:
        self._connect().execute("DELETE FROM seen WHERE uri = ?", (uri,))

    def add_event(self, event: dict) -> None:
        self._connect().execute(
            f"INSERT INTO events ({', '.join(EVENT_FIELDS)}) VALUES ({', '.join('?' * len(EVENT_FIELDS))})",
            [event.get(k) for k in EVENT_FIELDS],
        )

    def add_snapshot(self, snapshot_id: str) -> None:
        self._connect().execute("INSERT INTO snapshots (id) VALUES (?)", (snapshot_id,))


class PostgresLedgerConnection:
    """The slice of ``sqlite3.Connection`` the ledger uses, on a psycopg connection in autocommit mode: ``?``
    placeholders become ``%s``, rows answer by index and by name, and the tables live in their own schema."""

    def __init__(self, connection):
        self.connection = connection
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(7310412519)")  # one creator at a time
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {POSTGRES_NAMESPACE}")
            connection.execute(f"SET search_path TO {POSTGRES_NAMESPACE}")
            for statement in filter(str.strip, POSTGRES_SCHEMA.split(";")):
                connection.execute(statement)
        connection.execute(f"SET search_path TO {POSTGRES_NAMESPACE}")

    def execute(self, query: str, params=()):
        cursor = self.connection.cursor(row_factory=_row_factory)
        return cursor.execute(query.replace("?", "%s"), list(params))

    def close(self) -> None:
        self.connection.close()


class _Row(tuple):
    names: tuple[str, ...] = ()

    def __getitem__(self, key):
        return tuple.__getitem__(self, self.names.index(key) if isinstance(key, str) else key)

    def keys(self):
        return list(self.names)


def _row_factory(cursor):
    names = tuple(column.name for column in cursor.description or ())
    row_type = type("Row", (_Row,), {"names": names})
    return lambda values: row_type(values)


def _file_record(row) -> dict:
    record = {k: row[k] for k in FILE_FIELDS}
    record["uris"] = json.loads(record["uris"])
    for key in ("reason", "report"):
        if record[key] is None:
            record.pop(key)
    return record
