"""What the Ollama backend's HTTP client costs per streamed request, without the router.

Run by hand (not in CI):  .venv/bin/python benchmarks/bench_node_client.py [--profile]

Starts one unpaced herd-sim process on a free 127.0.0.1 port, then opens ``--count``
sequential streamed chats through ``OllamaBackend.open`` and reads them with
``rest_blocks`` (what the router's relay does), in this process: the CPU time per request
is the backend's and its HTTP client's alone. ``--profile`` prints the cProfile rows (CPU
clock) of the client's and the backend's own functions. Works with whichever herd the interpreter
imports, so two checkouts can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

import aiohttp
from herd.interfaces import BackendContext, InferenceRequest
from herd.settings import NodeConfig
from herd_plugins.backend_ollama import OllamaBackend

sys.path.insert(0, str(Path(__file__).parent))
from _harness import sim_node

MODEL = "llama3.2:3b"
BODY = b'{"model":"llama3.2:3b","messages":[{"role":"user","content":"hi"}],"stream":true}'


async def streams(url: str, count: int) -> float:
    async with aiohttp.ClientSession() as http:
        backend = OllamaBackend(NodeConfig(name="n", url=url), None, BackendContext(http=http))
        request = InferenceRequest(
            api="ollama",
            endpoint="chat",
            kind="text",
            model=MODEL,
            model_key=MODEL,
            body={},
            stream=True,
            raw_body=BODY,
        )
        for _ in range(20):  # warm up: connections, imports, caches
            reply = await backend.open(request)
            async for _block in reply.rest_blocks():
                pass
        start = time.process_time()
        for _ in range(count):
            reply = await backend.open(request)
            async for _block in reply.rest_blocks():
                pass
            await reply.aclose()
        spent = time.process_time() - start
        await backend.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--asyncio", action="store_true", help="asyncio's loop, not uvloop")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-all", action="store_true", help="and the top rows overall")
    args = parser.parse_args()
    with sim_node("--num-parallel", "8", "--gen-tps", "0", "--reply-tokens", str(args.tokens)) as (
        url,
        _,
    ):
        if args.profile:
            profile = cProfile.Profile(time.process_time)  # CPU, not time blocked in epoll
            profile.enable()
        factory = None
        if not args.asyncio:  # uvicorn runs the router on uvloop when it is installed
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            spent = runner.run(streams(url, args.count))
        if args.profile:
            profile.disable()
    print(f"backend + client CPU per streamed request: {spent / args.count * 1e6:.0f} us")
    if args.profile:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(r"node_http|aiohttp|backend_ollama", 25)
        if args.profile_all:
            stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
