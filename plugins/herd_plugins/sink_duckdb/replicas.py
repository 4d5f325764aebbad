"""Traces of several router replicas: each exports its own, each reader sees them all.

Every replica keeps its own DuckDB file (DuckDB allows one writing process per file, and
another process cannot even open a file that one is writing). With ``export_dir`` set to
a directory every replica can reach, each one writes its traces there as Parquet every
``export_interval`` seconds (``<export_name>.parquet``, replaced atomically by a rename);
the dashboard's queries then read a view of this replica's table plus every other
replica's latest export. Other replicas' rows are as old as their last export.
"""

from __future__ import annotations

import os
import socket
import zlib
from pathlib import Path

import duckdb

__all__ = ["default_export_name", "export_traces", "show_other_replicas"]


def default_export_name(db_path: str) -> str:
    """Host name plus a short hash of the database path: stable across restarts."""
    digest = zlib.crc32(os.path.abspath(db_path).encode()) & 0xFFFFFF
    return f"{socket.gethostname()}-{digest:06x}"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def export_traces(con: duckdb.DuckDBPyConnection, directory: str, name: str) -> Path:
    """Write every trace of this replica to ``<directory>/<name>.parquet`` (blocking)."""
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.parquet"
    partial = folder / f".{name}.parquet.partial"
    con.execute(f"COPY (SELECT * FROM traces) TO {_quoted(str(partial))} (FORMAT parquet)")
    os.replace(partial, target)  # readers see the old file or the new one, never half
    return target


def show_other_replicas(cursor: duckdb.DuckDBPyConnection, directory: str, name: str) -> int:
    """Make ``traces`` in this cursor this replica's table plus the other replicas'
    exports (a temporary view: other cursors still see the table alone). Returns how
    many other replicas' files it reads."""
    folder = Path(directory).expanduser()
    own = f"{name}.parquet"
    others = sorted(str(p) for p in folder.glob("*.parquet") if p.name != own)
    if not others:
        return 0
    database = cursor.execute("SELECT current_database()").fetchone()[0]
    files = ", ".join(_quoted(f) for f in others)
    cursor.execute(
        f'CREATE OR REPLACE TEMP VIEW traces AS SELECT * FROM "{database}".main.traces '
        f"UNION ALL BY NAME SELECT * FROM read_parquet([{files}], union_by_name = true)"
    )
    return len(others)
