"""Several replicas' traces: each exports Parquet to a shared directory, each reads all."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from herd_plugins.dashboard import analytics
from herd_plugins.sink_duckdb import DuckDBSink

from tests.plugins.trace_factory import make_trace


def test_each_replica_reads_the_others_exports_beside_its_own_rows(tmp_path: Path) -> None:
    shared = tmp_path / "shared"

    async def scenario() -> tuple[int, int, list[str]]:
        sinks = []
        for name, node, count in (("r1", "a", 3), ("r2", "b", 2)):
            config = DuckDBSink.Config(export_dir=str(shared), export_interval=3600)
            sink = DuckDBSink(config, str(tmp_path / name))
            await sink.start()
            for i in range(count):
                sink.submit(make_trace(request_id=f"{name}-{i}", node=node))
            sinks.append(sink)
        await sinks[1].stop()  # a replica that stops leaves its last export behind
        first = sinks[0]
        await first.flush()
        with first.reader() as cursor:
            total = cursor.execute("SELECT count(*) FROM traces").fetchone()[0]
            overview = analytics.overview(cursor, time.time())
            rows = cursor.execute("SELECT DISTINCT node FROM traces ORDER BY 1").fetchall()
            nodes = [row[0] for row in rows]
        own = first._db.execute("SELECT count(*) FROM traces").fetchone()[0]
        await first.stop()
        return total, own, nodes, overview

    total, own, nodes, overview = asyncio.run(scenario())
    assert overview["traces"] == 5  # the dashboard's analytics count all replicas
    assert (total, own) == (5, 3)  # the view adds r2's rows; the table keeps r1's only
    assert nodes == ["a", "b"]
    assert sorted(p.suffix for p in shared.iterdir()) == [".parquet", ".parquet"]
