"""``python -m herd_services``: the same as ``herd-node-services``."""

from herd_services.cli import main

raise SystemExit(main())
