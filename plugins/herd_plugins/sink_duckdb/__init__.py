"""Every request's trace in a DuckDB file, written in batches by a background thread.

DuckDB calls block, so none run on the event loop: ``submit`` appends to a bounded
queue and returns; one writer thread turns batches into JSON documents, which a second
thread inserts (one statement in flight), and prunes old rows; readers (the dashboard
API) open their own cursor in a worker thread. Options live under YAML
``plugins.options.duckdb``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import duckdb
import msgspec
from herd import RequestTrace, TraceSink, hookimpl

from herd_plugins.batching import BatchWorker
from herd_plugins.sink_duckdb.damaged import is_damaged, set_aside
from herd_plugins.sink_duckdb.replicas import (
    default_export_name,
    export_traces,
    show_other_replicas,
)
from herd_plugins.sink_duckdb.schema import batch_document, insert_document, migrate

__all__ = ["DuckDBSink", "TraceStoreError"]

log = logging.getLogger("herd.traces")

FILE_NAME = "herd.duckdb"
WARN_EVERY = 60.0  # seconds between two warnings of the same kind


class TraceStoreError(RuntimeError):
    """The trace store could not be opened (bad path, file locked by another process);
    a damaged file is set aside instead (see :mod:`herd_plugins.sink_duckdb.damaged`)."""


class DuckDBSink(TraceSink):
    """Stores traces in ``<data_dir>/herd.duckdb`` (in memory when ``data_dir`` is empty).

    Attributes:
        written: Traces inserted so far.
        failed: Traces whose batch failed to insert.
        pruned: Traces deleted for being older than ``retention_days``.
    """

    name = "duckdb"

    class Config(TraceSink.Config, forbid_unknown_fields=True):
        """Options under ``plugins.options.duckdb``."""

        path: Annotated[
            str, msgspec.Meta(description="Database file; default <data_dir>/herd.duckdb.")
        ] = ""
        # Each statement costs DuckDB about 10 ms (planning, commit) on a small VM whatever
        # its size: large batches when traces pile up (a quiet router writes what one
        # flush_interval gathered).
        batch_size: Annotated[
            int, msgspec.Meta(ge=1, description="Most traces inserted in one statement.")
        ] = 10_000
        flush_interval: Annotated[
            float, msgspec.Meta(gt=0, description="Seconds a trace may wait for its batch.")
        ] = 1.0
        queue_size: Annotated[
            int, msgspec.Meta(ge=1, description="Traces waiting at most; more are dropped.")
        ] = 100_000
        retention_days: Annotated[
            float, msgspec.Meta(ge=0, description="Days traces are kept; 0 keeps them forever.")
        ] = 30.0
        prune_interval: Annotated[
            float, msgspec.Meta(gt=0, description="Seconds between two prunes of old traces.")
        ] = 3600.0
        threads: Annotated[
            int, msgspec.Meta(ge=1, description="DuckDB worker threads (inserts and queries).")
        ] = 1
        memory_limit: Annotated[
            str,
            msgspec.Meta(
                description="Most memory DuckDB may use for its caches (DuckDB's own "
                "default is 80% of the machine's RAM); more spills to disk."
            ),
        ] = "256MB"
        checkpoint_threshold: Annotated[
            str,
            msgspec.Meta(
                description="Write-ahead log size at which DuckDB folds it into the file "
                "(DuckDB's own default: 16MB); the rows waiting for it stay in memory."
            ),
        ] = "64MB"
        export_dir: Annotated[
            str,
            msgspec.Meta(
                description="Several replicas: a directory all of them reach, where each "
                "writes its traces as Parquet and from which the dashboard reads them all."
            ),
        ] = ""
        export_interval: Annotated[
            float, msgspec.Meta(gt=0, description="Seconds between two Parquet exports.")
        ] = 60.0
        export_name: Annotated[
            str,
            msgspec.Meta(
                description="This replica's file name in export_dir (default: host name "
                "and a hash of the database path)."
            ),
        ] = ""

    def __init__(self, config: Any = None, data_dir: str = "") -> None:
        super().__init__(config or self.Config(), data_dir)
        self.path = self._resolve_path()
        # Changed on the writer thread only (submit counts refusals in the worker).
        self.written = 0
        self.failed = 0
        self.pruned = 0
        self._db: duckdb.DuckDBPyConnection | None = None
        self._writer: duckdb.DuckDBPyConnection | None = None
        self._warned_at: dict[str, float] = {}
        self.export_name = self.config.export_name or default_export_name(self.path)
        self._exporter: asyncio.Task[None] | None = None
        # DuckDB runs a batch's statement without the GIL: on its own thread it overlaps
        # the writer preparing the next batch (when traces pile up, a second core's
        # worth). One statement in flight at most; the writer settles it before a flush
        # is confirmed, a prune runs or the writer ends.
        self._inserter = ThreadPoolExecutor(1, thread_name_prefix="herd-duckdb-insert")
        self._inserting: tuple[Future[None], int] | None = None
        self._worker = BatchWorker(
            "herd-duckdb-writer",
            self._write,
            batch_size=self.config.batch_size,
            interval=self.config.flush_interval,
            queue_size=self.config.queue_size,
            tick=self._prune_old,
            tick_interval=self.config.prune_interval,
            settle=self._settle,
        )

    def _resolve_path(self) -> str:
        if self.config.path:
            return self.config.path
        if not self.data_dir:
            return ":memory:"
        return str(Path(self.data_dir).expanduser() / FILE_NAME)

    @property
    def rejected(self) -> int:
        """Traces refused by :meth:`submit` (queue full, or the sink closed)."""
        return self._worker.rejected

    @property
    def dropped(self) -> int:
        """Traces that never reached the database."""
        return self.rejected + self.failed

    def submit(self, trace: RequestTrace) -> None:
        """Queue a trace for the writer; drop it (counted, warned) when the queue is full."""
        if not self._worker.offer(trace):
            self._warn(
                "full",
                "trace store queue is full (%d waiting) or closed: %d traces dropped so far",
                self._worker.queued,
                self.dropped,
            )

    async def start(self) -> None:
        """Open (and upgrade) the database, then start the writer thread."""
        await asyncio.to_thread(self.open)
        self._worker.start()
        if self.config.export_dir and self.path != ":memory:":
            self._exporter = asyncio.create_task(self._export_forever())

    async def stop(self) -> None:
        """Write everything queued, checkpoint and close."""
        if self._exporter is not None:
            self._exporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._exporter
            self._exporter = None
            await asyncio.to_thread(self._export_once)  # the last word of this replica
        await asyncio.to_thread(self.close)

    async def flush(self) -> None:
        """Wait until every trace submitted so far is in the database."""
        await asyncio.to_thread(self.flush_now)

    def open(self) -> None:
        """Open the file and apply missing migrations (blocking; done by :meth:`start`)."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            version = self._connect()
        except (duckdb.Error, OSError) as exc:
            if self.path == ":memory:" or not is_damaged(exc):
                raise TraceStoreError(f"cannot open the trace store {self.path}: {exc}") from exc
            self._close_quietly()
            try:
                kept = set_aside(self.path)
                version = self._connect()
            except (duckdb.Error, OSError) as again:
                raise TraceStoreError(
                    f"cannot open the trace store {self.path}: {exc}; nor start a new one: {again}"
                ) from again
            log.warning(
                "the trace store %s was damaged (%s): it is kept as %s, and a new one "
                "starts; the traces before it are in that file",
                self.path,
                exc,
                kept,
            )
        # The writer thread's own connection; no other thread uses it.
        self._writer = self._db.cursor()
        log.info("trace store %s (schema v%d)", self.path, version)

    def _connect(self) -> int:
        """Connect and migrate; returns the schema version."""
        # One thread: measured in the router, DuckDB's default (one per core) costs about
        # six times the CPU per insert, spent beside the event loop. A larger checkpoint
        # threshold than DuckDB's: each checkpoint rewrites the row group being filled,
        # so at 16MB a third of the writer's time went to checkpoints; at 64MB 300k
        # traces took 37% less time and a lower peak RSS.
        self._db = duckdb.connect(
            self.path,
            config={
                "threads": self.config.threads,
                "memory_limit": self.config.memory_limit,
                "checkpoint_threshold": self.config.checkpoint_threshold,
            },
        )
        return migrate(self._db)

    def _close_quietly(self) -> None:
        if self._db is not None:
            with contextlib.suppress(duckdb.Error):
                self._db.close()
            self._db = None

    def flush_now(self, timeout: float | None = 60.0) -> bool:
        """Block until the writer has written everything queued before this call."""
        return self._worker.flush(timeout)

    def close(self) -> None:
        """Stop the writer after it drained the queue, then close the database (blocking)."""
        self._worker.stop()
        self._inserter.shutdown()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._db is not None:
            with contextlib.suppress(duckdb.Error):
                self._db.execute("CHECKPOINT")
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one thread's queries (blocking: use from a worker thread)."""
        if self._db is None:
            raise TraceStoreError("the trace store is not open")
        cursor = self._db.cursor()
        try:
            if self.config.export_dir:
                try:
                    show_other_replicas(cursor, self.config.export_dir, self.export_name)
                except (duckdb.Error, OSError) as exc:  # this replica's rows still answer
                    self._warn("replicas", "cannot read other replicas' traces: %s", exc)
            yield cursor
        finally:
            cursor.close()

    def stats(self) -> dict[str, int]:
        """Counters for metrics and the dashboard."""
        return {
            "queued": self._worker.queued,
            "written": self.written,
            "dropped": self.dropped,
            "pruned": self.pruned,
        }

    def prune(self, con: duckdb.DuckDBPyConnection) -> int:
        """Delete traces older than ``retention_days`` (none when it is 0); how many went."""
        days = self.config.retention_days
        if days <= 0:
            return 0
        cutoff = int((time.time() - days * 86400) * 1_000_000)
        row = con.execute(
            "DELETE FROM traces WHERE received_at < make_timestamp(?::BIGINT)", [cutoff]
        ).fetchone()
        deleted = int(row[0]) if row else 0
        if deleted:
            self.pruned += deleted
            log.info("trace store: pruned %d traces older than %g days", deleted, days)
        return deleted

    # -- several replicas -----------------------------------------------------------------

    async def _export_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.export_interval)
            await asyncio.to_thread(self._export_once)

    def _export_once(self) -> None:
        if self._db is None:
            return
        self.flush_now(10.0)
        cursor = self._db.cursor()
        try:
            export_traces(cursor, self.config.export_dir, self.export_name)
        except (duckdb.Error, OSError) as exc:
            self._warn("export", "trace export to %s failed: %s", self.config.export_dir, exc)
        finally:
            cursor.close()

    # -- on the writer thread ----------------------------------------------------------

    def _write(self, batch: list[RequestTrace]) -> None:
        assert self._writer is not None
        try:
            document = batch_document(batch)
        except Exception as exc:
            self._lost(len(batch), exc)
            return
        self._settle()
        future = self._inserter.submit(insert_document, self._writer, document)
        self._inserting = (future, len(batch))

    def _settle(self) -> None:
        """Wait for the statement in flight and count its traces."""
        if self._inserting is None:
            return
        future, count = self._inserting
        self._inserting = None
        try:
            future.result()
        except Exception as exc:
            self._lost(count, exc)
        else:
            self.written += count

    def _lost(self, count: int, exc: Exception) -> None:
        self.failed += count
        self._warn("write", "trace store insert failed, %d traces lost: %s", count, exc)

    def _prune_old(self) -> None:
        assert self._writer is not None
        try:
            self.prune(self._writer)
        except duckdb.Error as exc:
            self._warn("prune", "trace store prune failed: %s", exc)

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._warned_at.get(kind, -math.inf) >= WARN_EVERY:
            self._warned_at[kind] = now
            log.warning(message, *args)


@hookimpl
def herd_register_sinks() -> list[type[TraceSink]]:
    return [DuckDBSink]
