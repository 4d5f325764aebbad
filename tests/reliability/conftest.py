"""Fixtures for the reliability tests: real reverse proxies (see proxy_servers.py)."""

from tests.reliability.proxy_servers import haproxy, nginx

__all__ = ["haproxy", "nginx"]
