"""A trace store that cannot be opened: damaged (set aside, so the router still starts) or
held by another process (a clear error).

The traces are the router's record, not what it needs to route: a file left empty by a
full disk, cut short or scrambled by a crash, or a write-ahead log that no longer replays
must not keep the router down. Such a file is renamed beside itself
(``herd.duckdb.damaged-20261205-041503``, its ``.wal`` with it), kept for whoever wants to
look into it, and a new store begins. A lock held by another process, a file from a newer
DuckDB, or a directory the router may not write to are not damage: moving the file would
not help, or would hide traces a newer release can still read, so they stay errors (the
router's start-up says a lock in its own words).
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["is_damaged", "set_aside"]

# What DuckDB says of a file it cannot read (checked against DuckDB 1.x: an empty or
# scrambled file, one cut short, a block or a WAL entry whose checksum is wrong)
_DAMAGE = (
    "not a valid DuckDB database file",
    "Could not read enough bytes",
    "Corrupt database file",
    "Corrupt WAL file",
    "Failure while replaying WAL",
)


def is_damaged(error: BaseException) -> bool:
    """Whether ``error`` (from opening the store) says the file itself is damaged."""
    text = str(error)
    return any(sign in text for sign in _DAMAGE)


def set_aside(path: str) -> str:
    """Rename the damaged store (and its WAL) beside itself; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    store = Path(path)
    kept = store.with_name(f"{store.name}.damaged-{stamp}")
    store.rename(kept)
    wal = store.with_name(store.name + ".wal")
    if wal.exists():
        wal.rename(kept.with_name(kept.name + ".wal"))
    return str(kept)
