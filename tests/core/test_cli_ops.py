"""The operator commands (`herd status`, `models`, `pull`, `delete`, `drain`) as real processes
against a real router over emulated nodes."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from herd._engine.cli_ops import admin_key
from herd._engine.cli_tables import human_size, progress_line, table

from tests.conftest import emulated
from tests.core.processes import HERD, clean_env, herd_run

ADMIN = "admin-key-for-tests"


def herd(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return herd_run(list(args), clean_env(**env), stdin=stdin)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    return lines[-1]


@pytest.fixture
def fleet(make_sim, make_router):
    """Two emulated nodes (one can pull `tiny:1b`) behind a router."""
    a = make_sim(name="a", registry=[emulated("tiny:1b", 0.3)], pull_seconds_per_gb=0.5)
    b = make_sim(name="b", models=[emulated("solo:3b", 2.0)])
    return make_router(nodes=[a, b])


def test_status_lists_nodes_models_and_queues(fleet) -> None:
    httpx.post(
        fleet.url + "/api/chat",
        json={"model": "solo:3b", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    ).raise_for_status()
    fleet.poll_now()  # the router learns what is loaded from its next poll
    done = herd("status", "--router", fleet.url)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2 of 2 nodes online" in out
    lines = out.splitlines()
    assert any(line.split()[:3] == ["a", "online", "yaml"] for line in lines)
    b_line = next(line for line in lines if line.startswith("b "))
    assert "solo:3b" in b_line  # loaded there now
    assert any(line.split()[:2] == ["b", "solo:3b"] for line in lines)  # its queue


def test_models_says_where_each_model_is(fleet) -> None:
    done = herd("models", "--router", fleet.url)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("solo:3b"))
    assert row.split()[1:4] == ["2.1", "GB", "b"]  # 2 GiB
    done = herd("models", "--json", HERD_ROUTER=fleet.url)
    assert '"name":"solo:3b"' in done.stdout


def test_pull_asks_first_and_shows_progress(fleet) -> None:
    cancelled = herd("pull", "tiny:1b", "--node", "a", "--router", fleet.url, stdin="n\n")
    assert "cancelled" in one_error_line(cancelled)
    assert "Pull tiny:1b onto node a" in cancelled.stderr
    tags = httpx.get(fleet.url + "/api/tags").json()["models"]
    assert "tiny:1b" not in {m["name"] for m in tags}

    done = herd("pull", "tiny:1b", "--node", "a", "--router", fleet.url, stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert "pulled tiny:1b onto node a" in done.stdout
    assert "%" in done.stderr and "[" in done.stderr  # the progress bar, one line per stage
    tags = httpx.get(fleet.url + "/api/tags").json()["models"]
    assert {"name": "tiny:1b", "nodes": ["a"]}.items() <= next(
        m for m in tags if m["name"] == "tiny:1b"
    ).items()


def test_pull_errors_are_one_line(fleet) -> None:
    done = herd("pull", "no-such-model:1b", "--node", "a", "--yes", "--router", fleet.url)
    assert "pull of no-such-model:1b on node a failed" in one_error_line(done)
    done = herd("pull", "tiny:1b", "--node", "nope", "--yes", "--router", fleet.url)
    assert "the router answered 404: node 'nope' not found" in one_error_line(done)


def test_delete_needs_a_node_and_confirmation(fleet) -> None:
    done = herd("delete", "solo:3b", "--node", "b", "--router", fleet.url)
    assert "not confirmed" in one_error_line(done)  # no answer on stdin
    done = herd("delete", "solo:3b", "--node", "b", "--yes", "--router", fleet.url)
    assert done.returncode == 0, done.stderr
    assert "deleted solo:3b from node b" in done.stdout
    names = {m["name"] for m in httpx.get(fleet.url + "/api/tags").json()["models"]}
    assert "solo:3b" not in names


def test_drain_and_undrain(fleet) -> None:
    done = herd("drain", "a", "--yes", "--router", fleet.url)
    assert done.returncode == 0 and "node a: draining" in done.stdout, done.stderr
    nodes = {n["name"]: n for n in httpx.get(fleet.url + "/fleet/status").json()["nodes"]}
    assert nodes["a"]["draining"] is True
    done = herd("undrain", "a", "--router", fleet.url, stdin="yes\n")
    assert done.returncode == 0 and "node a: online" in done.stdout, done.stderr


def test_the_admin_key_comes_from_the_environment(make_sim, make_router) -> None:
    router = make_router(nodes=[make_sim(name="a")], auth={"admin_key": ADMIN})
    done = herd("drain", "a", "--yes", "--router", router.url)
    line = one_error_line(done)
    assert "the router answered 401" in line and "HERD_ADMIN_KEY" in line
    done = herd("drain", "a", "--yes", "--router", router.url, HERD_ADMIN_KEY=ADMIN)
    assert done.returncode == 0, done.stderr
    # the router's own env file works on its machine too
    done = herd("undrain", "a", "--yes", HERD_ROUTER=router.url, HERD_AUTH__ADMIN_KEY=ADMIN)
    assert done.returncode == 0, done.stderr


def test_an_unreachable_router_is_one_line() -> None:
    done = herd("status", "--router", "http://127.0.0.1:9")
    line = one_error_line(done)
    assert line.startswith("herd status: cannot reach the router at http://127.0.0.1:9")


def test_admin_key_prefers_the_cli_variable() -> None:
    assert admin_key({"HERD_ADMIN_KEY": "a", "HERD_AUTH__ADMIN_KEY": "b"}) == "a"
    assert admin_key({"HERD_AUTH__ADMIN_KEY": "b"}) == "b"
    assert admin_key({}) == ""


def test_tables_sizes_and_progress() -> None:
    assert table(["A", "BB"], [["xyz", "1"]]) == "A    BB\nxyz  1"
    assert human_size(2_000_000_000) == "2.0 GB" and human_size(12) == "12 B"
    assert progress_line("pulling x", 50, 200).startswith("pulling x [#######")
    assert " 25% " in progress_line("pulling x", 50, 200)
    assert progress_line("success", None, None) == "success"


def test_reads_can_use_a_client_api_key(make_sim, make_router) -> None:
    router = make_router(
        nodes=[make_sim(name="a")], auth={"api_keys": [{"name": "me", "key": "k" * 16}]}
    )
    done = herd("models", "--router", router.url)
    line = one_error_line(done)
    assert "the router answered 401" in line
    assert "set HERD_API_KEY to a client key" in line  # a read needs no admin key
    done = herd("models", "--router", router.url, HERD_API_KEY="k" * 16)
    assert done.returncode == 0 and "llama3.2:3b" in done.stdout, done.stderr


def test_an_unknown_command_names_the_commands() -> None:
    done = herd("stauts")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "herd: unknown command 'stauts' (commands: serve, check-config, status, models, pull, "
        "delete, drain, undrain; see herd --help)"
    ]
    done = herd("herd.yaml")  # the file is given with --config
    assert done.returncode == 2 and "did you mean herd --config herd.yaml?" in done.stderr


def test_the_router_may_be_given_without_a_scheme(fleet) -> None:
    done = herd("status", "--router", fleet.url.removeprefix("http://"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"router {fleet.url}:")


def test_a_reader_that_leaves_early_is_no_traceback(fleet) -> None:
    """`herd status | head -1`: the pipe closes under the command's feet."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # before the command starts, so its first write finds no reader
    try:
        done = subprocess.run(
            [str(HERD), "status", "--router", fleet.url],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=clean_env(),
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""


def test_a_proxy_in_the_environment_is_not_used_for_a_router_on_this_machine(fleet) -> None:
    # a corporate machine's proxy (here: nothing listens) cannot reach this machine's router
    proxy = "http://127.0.0.1:9"
    done = herd(
        "status", "--router", fleet.url, HTTP_PROXY=proxy, http_proxy=proxy, ALL_PROXY=proxy
    )
    assert done.returncode == 0, done.stderr
    assert "2 of 2 nodes online" in done.stdout
