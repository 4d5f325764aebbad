"""The bad-input battery: bodies generated from the request Structs of ``herd.protocol``
(each field either of its type, at its edges, or any other JSON), plus raw junk, POSTed to
every endpoint of a real router. Whatever comes in, the answer is never a 500 and never
an empty 200."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import msgspec.inspect as mi
import pytest
from herd.protocol.anthropic import MessagesRequest
from herd.protocol.heartbeat import Heartbeat
from herd.protocol.ollama import (
    ChatRequest,
    CopyRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    ModelRequest,
    PullRequest,
)
from herd.protocol.openai import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from herd.protocol.responses import ResponsesRequest
from herd.protocol.workloads import ImageRequest, OpenAIImageRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LLAMA = "llama3.2:3b"
ENDPOINTS: list[tuple[str, str, type]] = [
    ("POST", "/api/chat", ChatRequest),
    ("POST", "/api/generate", GenerateRequest),
    ("POST", "/api/embed", EmbedRequest),
    ("POST", "/api/embeddings", EmbeddingsRequest),
    ("POST", "/api/show", ModelRequest),
    ("POST", "/api/pull", PullRequest),
    ("POST", "/api/copy", CopyRequest),
    ("DELETE", "/api/delete", ModelRequest),
    ("POST", "/v1/chat/completions", ChatCompletionRequest),
    ("POST", "/v1/completions", CompletionRequest),
    ("POST", "/v1/embeddings", EmbeddingRequest),
    ("POST", "/v1/messages", MessagesRequest),
    ("POST", "/v1/messages/count_tokens", MessagesRequest),
    ("POST", "/v1/responses", ResponsesRequest),
    ("POST", "/api/generate-image", ImageRequest),
    ("POST", "/v1/images/generations", OpenAIImageRequest),
    ("POST", "/fleet/heartbeat", Heartbeat),
    ("POST", "/dashboard/api/settings", dict),
]
EXAMPLES = 25

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
ANY_JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _typed(info: mi.Type, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of a msgspec type, edges included (empty, huge, negative)."""
    if depth > 3:
        return ANY_JSON
    if isinstance(info, mi.StrType):
        return st.sampled_from([LLAMA, "", "x" * 300, "a/b:c"]) | st.text(max_size=40)
    if isinstance(info, mi.IntType):
        return st.integers(-(2**64), 2**64)
    if isinstance(info, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(list(info.values))
    if isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return st.lists(_typed(info.item_type, depth + 1), max_size=3)
    if isinstance(info, mi.UnionType):
        return st.one_of([_typed(t, depth + 1) for t in info.types])
    if isinstance(info, mi.StructType):
        return _struct_body(info, depth + 1)
    return ANY_JSON


def _struct_body(info: mi.StructType, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    fields = {f.encode_name: st.one_of(_typed(f.type, depth), ANY_JSON) for f in info.fields}
    tag = {info.tag_field: st.just(info.tag)} if info.tag_field else {}
    return st.fixed_dictionaries(tag, optional=fields)


def _bodies(struct: type) -> st.SearchStrategy[bytes]:
    if struct is dict:
        typed = st.dictionaries(st.text(max_size=10), ANY_JSON, max_size=4)
    else:
        typed = _struct_body(mi.type_info(struct))
    junk = st.binary(max_size=200) | st.sampled_from(
        [b"", b"{", b"[]", b"null", b'"x"', b"{}" * 3, b'{"model": ', b"\xff\xfe"]
    )
    return st.one_of(typed.map(msgspec.json.encode), junk)


@pytest.fixture(scope="module")
def router():
    from herd.testing import SimConfig, SimNode
    from herd.testing.router_runner import RouterHandle

    sims = [SimNode(SimConfig(name=name, port=0)).start() for name in ("a", "b")]
    handle = RouterHandle(
        nodes=[{"name": s.config.name, "url": s.url} for s in sims],
        workloads={"transcription": True, "image_generation": True},
    ).start()
    yield handle
    handle.stop()
    for sim in sims:
        sim.stop()


@pytest.mark.parametrize("method,path,struct", ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_no_body_gets_a_500_or_an_empty_200(router, method: str, path: str, struct: type):
    client = httpx.Client(base_url=router.url, timeout=60)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=_bodies(struct))
    def check(body: bytes) -> None:
        reply = client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code != 500, (body[:200], reply.text[:300])
        assert "internal error" not in reply.text, (body[:200], reply.text[:300])
        if reply.status_code == 200:
            assert reply.content.strip(), body[:200]

    try:
        check()
    finally:
        client.close()
