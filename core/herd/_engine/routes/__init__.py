"""Thin route handlers: parse -> dispatch -> render."""
