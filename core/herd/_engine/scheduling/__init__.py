"""Choosing a node: ranking, per-node queues, the zombie reaper and auto-pull."""
