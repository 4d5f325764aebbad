"""``python -m herd.node_services``: the same as ``herd-node-services``."""

from herd.node_services.cli import main

raise SystemExit(main())
