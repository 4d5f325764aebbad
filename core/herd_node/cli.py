"""``herd-node``: the node agent's command line."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from herd._engine.logs import configure_logging

from herd_node.settings import AgentSettingsError, load_agent_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent until SIGTERM or SIGINT; returns the exit code."""
    try:
        settings = load_agent_settings(argv)
    except AgentSettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    # herd's lines at the chosen level; httpx and the rest only from WARNING (an INFO line
    # per poll would be tens of thousands of lines a day)
    configure_logging(settings.log_level)
    from herd_node.node import run_agent

    try:
        return asyncio.run(run_agent(settings))
    except KeyboardInterrupt:  # a second Ctrl-C, or a platform without signal handlers
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
