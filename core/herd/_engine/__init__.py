"""The router's engine: private. Plugins use the public names in :mod:`herd` only."""
