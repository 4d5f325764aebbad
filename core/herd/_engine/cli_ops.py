"""Operator commands on a running router's HTTP API: status, models, pull, delete, drain.

They only use the router's public endpoints (``/fleet/status``, ``/api/tags``, ``/api/ps``,
``/api/pull``, ``/api/delete``, ``/fleet/nodes/{name}/drain``), so they work from any
machine that can reach the router. The router's address is ``--router`` or
``HERD_ROUTER`` (default ``http://127.0.0.1:11435``). The admin key is read from
``HERD_ADMIN_KEY`` (falling back to ``HERD_AUTH__ADMIN_KEY``, the router's own setting, so
the router's env file works on its own machine) and sent as ``Authorization: Bearer``;
without one, ``HERD_API_KEY`` (a client key) is sent, enough for the read-only commands.
Every change asks for confirmation unless ``--yes``; every error is one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from herd._engine.cli_tables import human_size, progress_line, table
from herd.net import takes_proxy_from_environment

__all__ = ["COMMANDS", "OpsError", "RouterClient", "run_command"]

DEFAULT_ROUTER = "http://127.0.0.1:11435"
COMMANDS = ("status", "models", "pull", "delete", "drain", "undrain")


class OpsError(Exception):
    """A failed operator command; the message is the one line to print."""


class RouterClient:
    """A small HTTP client for one router, turning every failure into an :class:`OpsError`."""

    def __init__(self, url: str, admin_key: str = "", timeout: float = 30.0) -> None:
        url = url.strip()
        if url and "://" not in url:  # `--router 10.0.0.2:11435`, as curl takes it
            url = f"http://{url}"
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self.http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            trust_env=takes_proxy_from_environment(self.url),  # (no proxy for this machine)
        )

    def get(self, path: str) -> Any:
        return self._json(self._send("GET", path))

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self._send(method, path, body)

    def post_json(self, path: str) -> Any:
        return self._json(self._send("POST", path))

    def stream(self, path: str, body: dict[str, Any]) -> Any:
        """POST and yield each NDJSON line as a dict; the reply's headers come first."""
        try:
            with self.http.stream("POST", path, json=body, timeout=None) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise OpsError(self._refusal(reply))
                yield dict(reply.headers)
                for line in reply.iter_lines():
                    if line.strip():
                        yield msgspec.json.decode(line)
        except httpx.HTTPError as exc:
            raise OpsError(self._unreachable(exc)) from None

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            reply = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise OpsError(self._unreachable(exc)) from None
        if reply.status_code >= 400:
            raise OpsError(self._refusal(reply))
        return reply

    def _json(self, reply: httpx.Response) -> Any:
        try:
            return reply.json()
        except ValueError:
            raise OpsError(f"the router at {self.url} did not answer JSON") from None

    def _unreachable(self, exc: httpx.HTTPError) -> str:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return (
            f"cannot reach the router at {self.url} ({reason}); is herd running there? "
            "(--router URL or HERD_ROUTER)"
        )

    def _refusal(self, reply: httpx.Response) -> str:
        try:
            message = reply.json().get("error")
            if isinstance(message, dict):
                message = message.get("message")
        except (ValueError, AttributeError):
            message = None
        message = message or reply.text.strip() or reply.reason_phrase
        hint = ""
        if reply.status_code in (401, 403) and reply.request.method == "GET":
            # status and models read: a client key is enough, and the one a user may hold
            hint = " (set HERD_API_KEY to a client key, or HERD_ADMIN_KEY to the admin key)"
        elif reply.status_code in (401, 403):
            hint = " (set HERD_ADMIN_KEY to the router's auth.admin_key)"
        return f"the router answered {reply.status_code}: {message}{hint}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herd", description="Operate a running herd router.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--router",
        default=os.environ.get("HERD_ROUTER") or DEFAULT_ROUTER,
        help=f"the router's URL (default HERD_ROUTER or {DEFAULT_ROUTER})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", parents=[common], help="nodes, models and queues")
    status.description = "Nodes (state, models, loaded, in flight) and queues of a router."
    status.add_argument("--json", action="store_true", help="print /fleet/status as JSON")
    models = sub.add_parser("models", parents=[common], help="models in the fleet")
    models.description = "Every model in the fleet, its size, its nodes and where it is loaded."
    models.add_argument("--json", action="store_true", help="print the models as JSON")
    confirm = argparse.ArgumentParser(add_help=False)
    confirm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    pull = sub.add_parser("pull", parents=[common, confirm], help="pull a model onto a node")
    pull.description = "Pull a model onto a node, with a progress bar (asks first)."
    pull.add_argument("model")
    pull.add_argument("--node", "-n", help="the node (default: the router picks one with room)")
    delete = sub.add_parser("delete", parents=[common, confirm], help="delete a model")
    delete.description = "Delete a model from one node's disk (asks first)."
    delete.add_argument("model")
    delete.add_argument("--node", "-n", required=True, help="the node to delete it from")
    for name, what in (("drain", "send a node no new requests"), ("undrain", "resume a node")):
        node_cmd = sub.add_parser(name, parents=[common, confirm], help=what)
        node_cmd.description = f"{what[0].upper()}{what[1:]} (asks first)."
        node_cmd.add_argument("node")
    return parser


def admin_key(env: Any = None) -> str:
    """The admin key the CLI sends: ``HERD_ADMIN_KEY``, else ``HERD_AUTH__ADMIN_KEY``."""
    env = os.environ if env is None else env
    return env.get("HERD_ADMIN_KEY") or env.get("HERD_AUTH__ADMIN_KEY") or ""


def run_command(argv: list[str]) -> int:
    """Run one operator command; 0 on success, 1 on failure (said in one line)."""
    args = _parser().parse_args(argv)
    client = RouterClient(args.router, admin_key() or os.environ.get("HERD_API_KEY", ""))
    action: Callable[[RouterClient, argparse.Namespace], int] = globals()[f"_{args.command}"]
    try:
        return action(client, args)
    except OpsError as exc:
        print(f"herd {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"herd {args.command}: interrupted", file=sys.stderr)
        return 130


def confirm(question: str, yes: bool) -> None:
    """Ask on stderr, read a line from stdin; anything but y/yes cancels."""
    if yes:
        return
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer:
        raise OpsError("not confirmed (no answer on stdin); add --yes to skip the question")
    if answer.strip().lower() not in ("y", "yes"):
        raise OpsError("cancelled")


def _status(client: RouterClient, args: argparse.Namespace) -> int:
    body = client.get("/fleet/status")
    if args.json:
        print(msgspec.json.encode(body).decode())
        return 0
    router, summary = body.get("router", {}), body.get("summary", {})
    print(
        f"router {client.url}: herd {router.get('version', '?')}, "
        f"{summary.get('online', 0)} of {summary.get('nodes', 0)} nodes online, "
        f"{summary.get('models', 0)} models, {summary.get('in_flight', 0)} requests in flight, "
        f"agents {router.get('agents', '?')}"
    )
    rows = [
        [
            n["name"],
            n["state"],
            n.get("source", ""),
            str(len(n.get("models", []))),
            ", ".join(m["name"] for m in n.get("loaded", [])) or "-",
            str(n.get("queue", {}).get("in_flight", 0)),
            n.get("last_error") or "",
        ]
        for n in body.get("nodes", [])
    ]
    print(table(["NODE", "STATE", "SOURCE", "MODELS", "LOADED", "IN FLIGHT", "LAST ERROR"], rows))
    queue_rows = [
        [
            node,
            model,
            str(q.get("pending", 0)),
            str(q.get("in_flight", 0)),
            str(q.get("done", 0)),
            str(q.get("failed", 0)),
            f"{q.get('concurrency', '?')} ({q.get('concurrency_source') or q.get('source', '?')})",
        ]
        for node, models in sorted((body.get("queues") or {}).items())
        for model, q in sorted(models.items())
    ]
    if queue_rows:
        print()
        head = ["NODE", "MODEL", "PENDING", "IN FLIGHT", "DONE", "FAILED", "CONCURRENCY"]
        print(table(head, queue_rows))
    return 0


def _models(client: RouterClient, args: argparse.Namespace) -> int:
    tags = client.get("/api/tags").get("models", [])
    loaded: dict[str, list[str]] = {}
    for entry in client.get("/api/ps").get("models", []):
        loaded.setdefault(entry.get("name") or entry.get("model", ""), []).append(entry["node"])
    if args.json:
        out = [
            {
                "name": m["name"],
                "size": m.get("size", 0),
                "nodes": m.get("nodes", []),
                "loaded_on": loaded.get(m["name"], []),
            }
            for m in tags
        ]
        print(msgspec.json.encode(out).decode())
        return 0
    rows = [
        [
            m["name"],
            human_size(m.get("size", 0)),
            ", ".join(m.get("nodes", [])),
            ", ".join(loaded.get(m["name"], [])) or "-",
        ]
        for m in sorted(tags, key=lambda m: m["name"])
    ]
    print(table(["MODEL", "SIZE", "NODES", "LOADED ON"], rows) if rows else "no models")
    return 0


def _pull(client: RouterClient, args: argparse.Namespace) -> int:
    where = f"node {args.node}" if args.node else "the node the router picks"
    confirm(f"Pull {args.model} onto {where} via {client.url}?", args.yes)
    body: dict[str, Any] = {"model": args.model, "stream": True}
    if args.node:
        body["node"] = args.node
    events = client.stream("/api/pull", body)
    node = next(events).get("x-herd-node", args.node or "?")
    tty = sys.stderr.isatty()
    last_status = ""
    for event in events:
        if event.get("error"):
            _end_line(tty)
            raise OpsError(f"pull of {args.model} on node {node} failed: {event['error']}")
        status = str(event.get("status", ""))
        line = progress_line(status, event.get("completed"), event.get("total"))
        if tty:
            print(f"\r{line[:100]:<100}", end="", file=sys.stderr, flush=True)
        elif status != last_status:
            print(line, file=sys.stderr)
        last_status = status
    _end_line(tty)
    if last_status != "success":
        raise OpsError(f"pull of {args.model} on node {node} ended without success")
    print(f"pulled {args.model} onto node {node}")
    return 0


def _end_line(tty: bool) -> None:
    if tty:
        print(file=sys.stderr)


def _delete(client: RouterClient, args: argparse.Namespace) -> int:
    confirm(f"Delete {args.model} from node {args.node}'s disk via {client.url}?", args.yes)
    client.send("DELETE", "/api/delete", {"model": args.model, "node": args.node})
    print(f"deleted {args.model} from node {args.node}")
    return 0


def _drain(client: RouterClient, args: argparse.Namespace) -> int:
    confirm(f"Drain node {args.node} (no new requests; in-flight ones finish)?", args.yes)
    return _set_drain(client, args.node, "drain")


def _undrain(client: RouterClient, args: argparse.Namespace) -> int:
    confirm(f"Undrain node {args.node} (send it requests again)?", args.yes)
    return _set_drain(client, args.node, "undrain")


def _set_drain(client: RouterClient, node: str, verb: str) -> int:
    reply = client.post_json(f"/fleet/nodes/{node}/{verb}")
    print(f"node {reply.get('node', node)}: {reply.get('state', '?')}")
    return 0
