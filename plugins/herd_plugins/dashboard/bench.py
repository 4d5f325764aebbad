"""The Benchmarks tab: a bounded load test of the fleet, run from the page.

A run sends streaming ``/api/chat`` requests (workload ``chat``) or ``/api/embed``
requests (workload ``embed``) through the router itself, so they are routed, queued and
traced like any client's, from ``concurrency`` workers for ``duration_s`` seconds, then
waits for the requests in flight. One run at a time. Its traffic is tagged
``source:dashboard-bench`` and ``bench:<run id>``: Health and Trends leave it out of
their rates. A run stops early, saying why, at the first 4xx (the request itself is
wrong: every other would fail the same way) and when the share of failed requests
reaches ``max_error_share`` (after :data:`MIN_SAMPLES` requests). Results (tokens/s,
latency and TTFT percentiles, errors, the nodes that served) go to the
``benchmark_runs`` table of the trace store, or stay in memory without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Annotated, Any

import aiohttp
import msgspec

__all__ = ["BenchmarkRunner", "BenchmarkSpec"]

log = logging.getLogger("herd.dashboard")

HISTORY_LIMIT = 50
MIN_SAMPLES = 10
BENCH_TAG = "source:dashboard-bench"
_COLUMNS = (
    *("id", "started_at", "finished_at", "model", "duration_s", "concurrency", "num_predict"),
    *("status", "error", "requests", "errors", "completion_tokens", "throughput_tps"),
    *("tokens_per_second", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms"),
    *("p50_ttft_ms", "p95_ttft_ms", "nodes"),
)


class BenchmarkSpec(msgspec.Struct, forbid_unknown_fields=True):
    """What the page asks for (every field bounded)."""

    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    workload: Annotated[str, msgspec.Meta(pattern="^(chat|embed)$")] = "chat"
    max_error_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
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
        sink: Any,
    ) -> dict[str, Any]:
        """Start a run in the background; the caller checked :attr:`running` first."""
        self.current = {
            "id": os.urandom(6).hex(),
            "model": spec.model,
            "workload": spec.workload,
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
        sink: Any,
        run: dict[str, Any],
    ) -> None:
        samples: list[dict[str, Any]] = []
        if spec.workload == "embed":
            payload: dict[str, Any] = {"model": spec.model, "input": [spec.prompt]}
        else:
            payload = {
                "model": spec.model,
                "messages": [{"role": "user", "content": spec.prompt}],
                "stream": True,
                "options": {"num_predict": spec.num_predict},
            }
        body = msgspec.json.encode(payload)
        deadline = time.monotonic() + spec.duration_s
        url = base_url + ("/api/embed" if spec.workload == "embed" else "/api/chat")
        request_headers = {**headers, "Content-Type": "application/json"}
        request_headers["X-Herd-Tags"] = f"{BENCH_TAG}, bench:{run['id']}"
        status, error = "done", ""
        stop = _Stop(spec.max_error_share)
        try:
            await asyncio.gather(
                *(
                    self._worker(http, url, body, request_headers, deadline, run, samples, stop)
                    for _ in range(spec.concurrency)
                )
            )
            if stop.reason:
                status, error = "stopped", stop.reason
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
        stop: _Stop,
    ) -> None:
        while time.monotonic() < deadline and not stop.reason:
            sample = await _one_request(http, url, body, headers)
            samples.append(sample)
            run["requests"] = len(samples)
            run["errors"] += 1 if sample["error"] else 0  # counted as they come: no rescan
            stop.judge(sample, run["errors"], len(samples))
            if stop.reason:
                run["stop_reason"] = stop.reason

    def _save(self, sink: Any, result: dict[str, Any]) -> None:
        marks = ", ".join("?" for _ in _COLUMNS)
        with sink.reader() as cursor:
            cursor.execute(
                f"INSERT INTO benchmark_runs ({', '.join(_COLUMNS)}) VALUES ({marks})",
                [result[name] for name in _COLUMNS],
            )

    def history(self, sink: Any) -> list[dict[str, Any]]:
        """The last runs, newest first (blocking with a sink: call from a worker thread)."""
        if sink is None:
            return list(self.memory)
        with sink.reader() as cursor:
            cursor.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM benchmark_runs "
                f"ORDER BY started_at DESC LIMIT {HISTORY_LIMIT}"
            )
            return [dict(zip(_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


class _Stop:
    """Why a run stops before its time: the first 4xx, or too many failures."""

    def __init__(self, max_error_share: float) -> None:
        self.max_error_share = max_error_share
        self.reason = ""

    def judge(self, sample: dict[str, Any], errors: int, requests: int) -> None:
        if self.reason:
            return
        if 400 <= sample["status"] < 500:
            self.reason = (
                f"stopped at the first client error, HTTP {sample['status']}: "
                f"{sample['error'].partition(': ')[2] or sample['error']}"
            )
        elif requests >= MIN_SAMPLES and errors / requests >= self.max_error_share > 0:
            self.reason = (
                f"stopped: {errors} of {requests} requests failed "
                f"({errors / requests:.0%}, the limit is {self.max_error_share:.0%})"
            )


async def _one_request(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    started = time.monotonic()
    sample: dict[str, Any] = {"ttft": None, "tokens": 0, "tps": None, "node": "", "error": ""}
    sample["status"] = 0
    try:
        async with http.post(url, data=body, headers=headers) as response:
            sample["node"] = response.headers.get("X-Herd-Node", "")
            sample["status"] = response.status
            if response.status != 200:
                sample["error"] = f"HTTP {response.status}: {_reason(await response.read())}"
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


def _reason(body: bytes) -> str:
    """The error message of an Ollama or OpenAI error body, else its first 300 characters."""
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        answer = None
    if isinstance(answer, dict):
        error = answer.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        if error:
            return str(error)[:300]
    return body[:300].decode("utf-8", "replace")


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
