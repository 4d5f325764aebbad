"""Wire types and codecs for the protocols herd speaks (pure: no I/O)."""
