"""What tracing costs: DuckDB ingest rate, OTel span export rate, router throughput on vs off.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_traces.py [--quick] [--ingest-only]

1. Ingest: traces submitted to a DuckDBSink (in this process, a temporary file) as fast
   as possible, then flushed; reports traces/s into DuckDB (target >= 50,000/s), the
   same through the previous insert and settings (benchmarks/_ingest_baseline.py) in
   alternating rounds of the same run and their ratio (the VM's speed varies 2x), the
   same again up to the sink closed (its final checkpoint counted), and the CPU time per
   trace (all threads; the figure least moved by other work on a shared host).
2. OTel: the same traces through an OtelSink into an exporter that drops them (span
   building, the sink's whole CPU cost) and into a real OTLP/HTTP receiver on 127.0.0.1.
3. Router: one emulated node (herd-sim) and a router (herd) as separate processes on
   free 127.0.0.1 ports, streamed chats at a fixed concurrency, with the DuckDB and OTel
   sinks off, DuckDB alone, then both (OTLP to a receiver in this process); rounds
   alternate to spread the noise of a busy machine; reports req/s, router CPU per request
   and the ratio to "sinks off"; first with an unpaced node (the router is CPU-bound: the
   worst case for the sinks, whose work shares the router's interpreter), then with a
   node paced at 100 tokens/s (closer to real generation: the node sets the pace).
Every loop is bounded in count and time; every process stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _harness import concurrent, cpu_seconds, router, sim_node, table
from _ingest_baseline import BASELINE_OPTIONS, BaselineSink
from herd import RequestTrace
from herd.trace import AttemptRecord
from herd_plugins.sink_duckdb import DuckDBSink
from herd_plugins.sink_otel import OtelSink

MODEL = "llama3.2:3b"


def sample_traces(count: int) -> list[RequestTrace]:
    """Realistic traces: three scored nodes, one attempt, two tags, a second apart."""
    now = time.time()
    scores = {f"n{i}": {"thermal": 1.0, "queue-depth": 0.5, "memory-fit": 0.8} for i in range(3)}
    return [
        RequestTrace(
            request_id=f"{i:016x}",
            api="ollama",
            endpoint="chat",
            kind="text",
            model=MODEL,
            served_model=MODEL,
            node=f"n{i % 3}",
            received_at=now - count + i,
            first_byte_at=now - count + i + 0.1,
            done_at=now - count + i + 1.0,
            ttft_ms=100.0,
            latency_ms=1000.0,
            prompt_tokens=12,
            completion_tokens=64,
            tokens_per_second=64.0,
            tags=["app:bench", f"user:{i % 7}"],
            scores=scores,
            attempts=[AttemptRecord(f"n{i % 3}", now - count + i, now - count + i + 0.1)],
            client="127.0.0.1:50000",
        )
        for i in range(count)
    ]


def ingest_once(
    sink_class: type[DuckDBSink], traces: list[RequestTrace], **options: Any
) -> tuple[float, float, float, float]:
    """Into a fresh file through the sink: traces/s submitted to flushed (committed);
    traces/s up to closed (the final checkpoint too); this process's CPU us per trace up
    to closed (all threads: the figure least moved by other loads on the host); and
    submit()'s us per call."""
    count = len(traces)
    with tempfile.TemporaryDirectory() as data:
        config = DuckDBSink.Config(queue_size=count + 1, retention_days=0, **options)
        sink = sink_class(config, data)
        asyncio.run(sink.start())
        start, cpu = time.perf_counter(), time.process_time()
        for trace in traces:
            sink.submit(trace)
        submitted = time.perf_counter() - start
        sink.flush_now(timeout=600)
        flushed = time.perf_counter() - start
        asyncio.run(sink.stop())
        closed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        assert sink.written == count, sink.stats()
    return count / flushed, count / closed, cpu / count * 1e6, submitted / count * 1e6


def bench_ingest(count: int, rounds: int) -> list[list[object]]:
    """The product's sink and insert against the previous insert and settings (baseline:
    benchmarks/_ingest_baseline.py), in alternating rounds on the same traces."""
    traces = sample_traces(count)
    runs: dict[str, list[tuple[float, float, float, float]]] = {"current": [], "baseline": []}
    for _ in range(rounds):
        runs["baseline"].append(ingest_once(BaselineSink, traces, **BASELINE_OPTIONS))
        runs["current"].append(ingest_once(DuckDBSink, traces))

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in runs[name])

    note = f"{count:,} traces, median of {rounds}"
    rows: list[list[object]] = []
    for label, index in (("", 0), (", closed", 1)):
        current, baseline = median("current", index), median("baseline", index)
        rows += [
            [f"DuckDB ingest{label} (traces/s)", f"{current:,.0f}", note],
            [f"DuckDB ingest{label}, baseline (traces/s)", f"{baseline:,.0f}", "same run"],
            [f"DuckDB ingest{label} / baseline", f"{current / baseline:.2f}x", "same run"],
        ]
    current, baseline = median("current", 2), median("baseline", 2)
    rows += [
        ["DuckDB ingest, closed, CPU (us/trace)", f"{current:.1f}", "all threads"],
        ["DuckDB ingest, closed, CPU, baseline", f"{baseline:.1f}", "same run"],
        ["DuckDB ingest CPU / baseline", f"{current / baseline:.2f}x", "same run"],
        ["DuckDB submit() (us/call)", f"{median('current', 3):.2f}", "caller's side"],
    ]
    return rows


class _Discard:
    """A span exporter that keeps nothing: what remains is the sink's own cost."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def bench_otel(count: int, receiver_url: str) -> list[list[object]]:
    rows: list[list[object]] = []
    traces = sample_traces(count)
    for label, sink in (
        (
            "OTel spans built (traces/s)",
            OtelSink(OtelSink.Config(queue_size=count + 1), exporter=_Discard()),
        ),  # type: ignore[arg-type]
        (
            "OTel OTLP/HTTP export, child process (traces/s)",
            OtelSink(OtelSink.Config(otlp_endpoint=receiver_url, queue_size=count + 1)),
        ),
    ):
        asyncio.run(sink.start())
        start = time.perf_counter()
        for trace in traces:
            sink.submit(trace)
        sink.flush_now(timeout=600)
        elapsed = time.perf_counter() - start
        asyncio.run(sink.stop())
        rows.append([label, f"{sink.exported / elapsed:,.0f}", f"{sink.exported:,} traces"])
    return rows


@contextmanager
def otlp_receiver() -> Iterator[str]:
    """An OTLP/HTTP endpoint on 127.0.0.1 that accepts and discards."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def bench_router(
    receiver_url: str,
    sim_args: list[str],
    rounds: int,
    per_round: int,
    concurrency: int,
) -> list[list[object]]:
    """Throughput and router CPU per request with the sinks off, DuckDB on, both on."""
    configs = {
        "sinks off": "plugins:\n  disable: [sink-duckdb, sink-otel]\n",
        "DuckDB on": "plugins:\n  disable: [sink-otel]\n",
        "DuckDB + OTel on": (
            f"plugins:\n  options:\n    otel: {{otlp_endpoint: '{receiver_url}'}}\n"
        ),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    with sim_node(*sim_args) as (node_url, _):
        for _ in range(rounds):
            for name, extra in configs.items():
                with router([node_url], extra) as (router_url, proc):
                    asyncio.run(concurrent(router_url, MODEL, concurrency, 50, 30))  # warm up
                    cpu0 = cpu_seconds(proc.pid)
                    done, seconds = asyncio.run(
                        concurrent(router_url, MODEL, concurrency, per_round, 90)
                    )
                    cpu = cpu_seconds(proc.pid) - cpu0
                    results[name].append((done / seconds, cpu / max(done, 1) * 1000))
    rows: list[list[object]] = []
    base_rps = statistics.median(r for r, _ in results["sinks off"])
    base_cpu = statistics.median(c for _, c in results["sinks off"])
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        cpu_ms = statistics.median(c for _, c in runs)
        rows.append(
            [
                name,
                f"{rps:,.0f}",
                f"{rps / base_rps:.3f}",
                f"{cpu_ms:.3f}",
                f"{rps * cpu_ms / 10:.1f}%",
                f"{base_cpu / cpu_ms:.3f}",
            ]
        )
    return rows


HEADERS = ["config", "req/s", "ratio", "CPU ms/req", "CPU of a core", "capacity ratio"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer traces and requests")
    parser.add_argument("--ingest-only", action="store_true", help="the DuckDB ingest rows only")
    args = parser.parse_args()
    ingest_count = 50_000 if args.quick else 200_000
    ingest_rounds = 3
    otel_count = 5_000 if args.quick else 20_000
    rounds = 2 if args.quick else 3
    unpaced = ["--num-parallel", "256", "--gen-tps", "0", "--reply-tokens", "16"]
    paced = ["--num-parallel", "256", "--gen-tps", "100", "--reply-tokens", "16"]

    if args.ingest_only:
        print(table(["measure", "value", "note"], bench_ingest(ingest_count, ingest_rounds)))
        return
    with otlp_receiver() as receiver_url:
        rows = bench_ingest(ingest_count, ingest_rounds) + bench_otel(otel_count, receiver_url)
        print("\nTrace sinks in one process")
        print(table(["measure", "value", "note"], rows))
        per_round = 400 if args.quick else 1500
        worst = bench_router(receiver_url, unpaced, rounds, per_round, 16)
        print(
            f"\nRouter in front of an unpaced node (16-token streamed chats, concurrency 16): "
            f"CPU-bound, the worst case; median of {rounds} alternating rounds of {per_round}"
        )
        print(table(HEADERS, worst))
        per_round = 64 if args.quick else 200
        typical = bench_router(receiver_url, paced, rounds, per_round, 16)
        print(
            f"\nRouter in front of a paced node (100 tokens/s, 16 tokens, concurrency 16); "
            f"median of {rounds} alternating rounds of {per_round}"
        )
        print(table(HEADERS, typical))
    print(
        "\nCPU columns are the router process's. Capacity ratio = CPU per request with the "
        "sinks off / with them on: the throughput ratio of a router with no CPU to spare "
        "(meaningful in the CPU-bound case; at a few req/s per-batch costs dominate it)."
    )


if __name__ == "__main__":
    main()
