"""Fixtures for the contrib tests: a real redis-server per test (see redis_server.py)."""

from tests.contrib.redis_server import redis_server

__all__ = ["redis_server"]
