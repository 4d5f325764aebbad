"""The Benchmarks tab: a bounded load test of the fleet, run from the page.

A run sends streaming ``/api/chat`` requests through the router itself (so they are
routed, queued and traced like any client's, tagged ``benchmark``) from ``concurrency``
workers for ``duration_s`` seconds, then waits for the requests in flight. One run at a
time. Results (tokens/s, latency and TTFT percentiles, errors, the nodes that served)
go to the ``benchmark_runs`` table of the trace store, or stay in memory without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
import msgspec

if TYPE_CHECKING:
    from herd_plugins.sink_duckdb import DuckDBSink

__all__ = ["BenchmarkRunner", "BenchmarkSpec"]

log = logging.getLogger("herd.dashboard")

HISTORY_LIMIT = 50
_COLUMNS = (
    *("id", "started_at", "finished_at", "model", "duration_s", "concurrency", "num_predict"),
    *("status", "error", "requests", "errors", "completion_tokens", "throughput_tps"),
    *("tokens_per_second", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms"),
    *("p50_ttft_ms", "p95_ttft_ms", "nodes"),
)


class BenchmarkSpec(msgspec.Struct, forbid_unknown_fields=True):
    """What the page asks for (every field bounded)."""

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    duration_s: Annotated[float, msgspec.Meta(ge=1, le=300)] = 10.0
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=32)] = 2
    num_predict: Annotated[int, msgspec.Meta(ge=1, le=2048)] = 64
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = "Tell a short story about the sea."


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class BenchmarkRunner:
    """Runs one benchmark at a time for one app and remembers the results."""

    def __init__(self) -> None:
        self.current: dict[str, Any] | None = None
        self.memory: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def progress(self) -> dict[str, Any] | None:
        """The run in progress (or the last one, until another starts)."""
        if self.current is None:
            return None
        run = dict(self.current)
        if run["status"] == "running":
            elapsed = time.time() - run["started_at"]
            run["progress"] = round(min(1.0, elapsed / run["duration_s"]), 3)
        return run

    def start(
        self,
        spec: BenchmarkSpec,
        http: aiohttp.ClientSession,
        base_url: str,
        headers: dict[str, str],
        sink: DuckDBSink | None,
    ) -> dict[str, Any]:
        """Start a run in the background; the caller checked :attr:`running` first."""
        self.current = {
            "id": os.urandom(6).hex(),
            "model": spec.model,
            "duration_s": spec.duration_s,
            "concurrency": spec.concurrency,
            "num_predict": spec.num_predict,
            "started_at": time.time(),
            "status": "running",
            "progress": 0.0,
            "requests": 0,
            "errors": 0,
        }
        logging.getLogger("herd.audit").info("benchmark %s", msgspec.to_builtins(spec))
        coro = self._run(spec, http, base_url, headers, sink, self.current)
        self._task = asyncio.get_running_loop().create_task(coro)
        return dict(self.current)

    async def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(
        self,
        spec: BenchmarkSpec,
        http: aiohttp.ClientSession,
        base_url: str,
        headers: dict[str, str],
        sink: DuckDBSink | None,
        run: dict[str, Any],
    ) -> None:
        samples: list[dict[str, Any]] = []
        body = msgspec.json.encode(
            {
                "model": spec.model,
                "messages": [{"role": "user", "content": spec.prompt}],
                "stream": True,
                "options": {"num_predict": spec.num_predict},
            }
        )
        deadline = time.monotonic() + spec.duration_s
        url = base_url + "/api/chat"
        request_headers = {**headers, "Content-Type": "application/json"}
        request_headers["X-Herd-Tags"] = "benchmark"
        status, error = "done", ""
        try:
            await asyncio.gather(
                *(
                    self._worker(http, url, body, request_headers, deadline, run, samples)
                    for _ in range(spec.concurrency)
                )
            )
        except asyncio.CancelledError:
            status = "cancelled"
        except Exception as exc:  # a bug here must not kill the router's loop
            log.exception("benchmark %s failed", run["id"])
            status, error = "failed", str(exc)
        finished = time.time()
        summary = _summary(samples, finished - run["started_at"])
        result = {**run, **summary, "status": status, "finished_at": finished}
        result = {name: result.get(name) for name in _COLUMNS}
        result["error"] = error or summary["error"]
        self.memory = [result, *self.memory][:HISTORY_LIMIT]
        if sink is not None:
            try:
                await asyncio.to_thread(self._save, sink, result)
            except Exception:
                log.exception("benchmark %s: could not save the result", run["id"])
        # Last: a page that sees the run finished finds it in the history too.
        run.pop("progress", None)
        run.update(result)

    async def _worker(
        self,
        http: aiohttp.ClientSession,
        url: str,
        body: bytes,
        headers: dict[str, str],
        deadline: float,
        run: dict[str, Any],
        samples: list[dict[str, Any]],
    ) -> None:
        while time.monotonic() < deadline:
            samples.append(await _one_request(http, url, body, headers))
            run["requests"] = len(samples)
            run["errors"] = sum(1 for s in samples if s["error"])

    def _save(self, sink: DuckDBSink, result: dict[str, Any]) -> None:
        marks = ", ".join("?" for _ in _COLUMNS)
        with sink.reader() as cursor:
            cursor.execute(
                f"INSERT INTO benchmark_runs ({', '.join(_COLUMNS)}) VALUES ({marks})",
                [result[name] for name in _COLUMNS],
            )

    def history(self, sink: DuckDBSink | None) -> list[dict[str, Any]]:
        """The last runs, newest first (blocking with a sink: call from a worker thread)."""
        if sink is None:
            return list(self.memory)
        with sink.reader() as cursor:
            cursor.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM benchmark_runs "
                f"ORDER BY started_at DESC LIMIT {HISTORY_LIMIT}"
            )
            return [dict(zip(_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


async def _one_request(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    started = time.monotonic()
    sample: dict[str, Any] = {"ttft": None, "tokens": 0, "tps": None, "node": "", "error": ""}
    try:
        async with http.post(url, data=body, headers=headers) as response:
            sample["node"] = response.headers.get("X-Herd-Node", "")
            if response.status != 200:
                text = (await response.read())[:300].decode("utf-8", "replace")
                sample["error"] = f"HTTP {response.status}: {text}"
            else:
                async for line in response.content:
                    if not line.strip():
                        continue
                    if sample["ttft"] is None:
                        sample["ttft"] = time.monotonic() - started
                    chunk = msgspec.json.decode(line)
                    if chunk.get("error"):
                        sample["error"] = str(chunk["error"])
                    elif chunk.get("done"):
                        sample["tokens"] = int(chunk.get("eval_count") or 0)
                        duration = float(chunk.get("eval_duration") or 0) / 1e9
                        if duration > 0 and sample["tokens"]:
                            sample["tps"] = sample["tokens"] / duration
    except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
        sample["error"] = str(exc) or type(exc).__name__
    sample["latency"] = time.monotonic() - started
    return sample


def _summary(samples: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    good = [s for s in samples if not s["error"]]
    latencies = [s["latency"] * 1000 for s in good]
    ttfts = [s["ttft"] * 1000 for s in good if s["ttft"] is not None]
    rates = [s["tps"] for s in good if s["tps"]]
    tokens = sum(s["tokens"] for s in good)
    return {
        "requests": len(samples),
        "errors": len(samples) - len(good),
        "completion_tokens": tokens,
        "throughput_tps": round(tokens / elapsed, 2) if elapsed > 0 else None,
        "tokens_per_second": round(sum(rates) / len(rates), 2) if rates else None,
        "p50_latency_ms": percentile(latencies, 0.5),
        "p95_latency_ms": percentile(latencies, 0.95),
        "p99_latency_ms": percentile(latencies, 0.99),
        "p50_ttft_ms": percentile(ttfts, 0.5),
        "p95_ttft_ms": percentile(ttfts, 0.95),
        "nodes": sorted({s["node"] for s in samples if s["node"]}),
        "error": next((s["error"] for s in samples if s["error"]), "") if not good else "",
    }
