"""The fleet: the node registry, agent membership and node services."""
