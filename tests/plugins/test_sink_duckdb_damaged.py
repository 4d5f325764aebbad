"""A trace store DuckDB cannot open: damaged files are set aside so the router starts; a
file another process holds stays an error that says so."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from herd_plugins.sink_duckdb import DuckDBSink, TraceStoreError
from trace_factory import make_trace


def _rows(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM traces").fetchone()[0]


def _valid_store(path: Path, rows: int = 20_000) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE filler AS SELECT range AS n FROM range($1)", [rows])


def _empty(path: Path) -> None:  # (a full disk when the file was made)
    path.write_bytes(b"")


def _scrambled(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 40)


def _cut_short(path: Path) -> None:  # (a crash mid-write, a copy that stopped)
    _valid_store(path)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


def _bad_wal(path: Path) -> None:  # (a write-ahead log whose entries no longer add up)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE filler (n INTEGER)")
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute("INSERT INTO filler SELECT range FROM range(1000)")
    wal = path.with_name(path.name + ".wal")
    size = wal.stat().st_size
    with wal.open("r+b") as file:
        file.seek(size // 2)
        file.write(b"\xa5" * 64)


@pytest.mark.parametrize("damage", [_empty, _scrambled, _cut_short, _bad_wal])
def test_a_damaged_store_is_kept_aside_and_a_new_one_starts(
    tmp_path: Path, damage, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "herd.duckdb"
    damage(path)
    before = {p.name.replace("herd.duckdb", ""): p.read_bytes() for p in tmp_path.iterdir()}
    sink = DuckDBSink(DuckDBSink.Config(retention_days=0), str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="herd.traces"):
        asyncio.run(sink.start())
    sink.submit(make_trace())
    asyncio.run(sink.stop())
    assert _rows(path) == 1  # the new store takes traces
    kept = sorted(p for p in tmp_path.iterdir() if ".damaged-" in p.name)
    # the damaged file (and its WAL) kept byte for byte, under one new name
    after = {p.name.removeprefix(kept[0].name): p.read_bytes() for p in kept}
    assert after == before
    [warning] = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert str(kept[0]) in warning


def test_a_store_another_process_holds_is_an_error_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "herd.duckdb"
    _valid_store(path, 10)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]);"
         "print('open', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        sink = DuckDBSink(DuckDBSink.Config(), str(tmp_path))
        with pytest.raises(TraceStoreError, match="lock"):
            asyncio.run(sink.start())
    finally:
        holder.communicate("", timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["herd.duckdb"]  # nothing moved
