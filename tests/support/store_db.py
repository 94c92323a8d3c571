"""Look at a cluster's SQLite store directly (read-only while the server runs), to check what is
really on disk, and append to a stopped server's log to recreate the state a crash leaves."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any


def _connect(db: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True))


def rows_for(db: Path, resource: str, namespace: str, name: str) -> list[tuple[int, str]]:
    """(rv, event) of every stored row of one key, oldest first."""
    with _connect(db) as conn:
        return [
            (int(rv), str(event))
            for rv, event in conn.execute(
                "SELECT rv, event FROM log WHERE resource = ? AND namespace = ? AND name = ? ORDER BY rv",
                (resource, namespace, name),
            )
        ]


def compacted(db: Path) -> int:
    """The resourceVersion the store has compacted up to (0 if it never compacted)."""
    with _connect(db) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'compacted'").fetchone()
        return int(row[0]) if row else 0


def integrity(db: Path) -> str:
    with _connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def append(db: Path, resource: str, namespace: str, name: str, event: str, body: dict[str, Any]) -> int:
    """Append a row to a stopped server's log, as a commit the server made just before dying;
    returns its resourceVersion. The body's resourceVersion is set to match, as the store does."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        rv = int(conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()[0]) + 1
        body = {**body, "metadata": {**body.get("metadata", {}), "resourceVersion": str(rv)}}
        conn.execute(
            "INSERT INTO log(rv, resource, namespace, name, event, body) VALUES (?,?,?,?,?,?)",
            (rv, resource, namespace, name, event, json.dumps(body)),
        )
        return rv
