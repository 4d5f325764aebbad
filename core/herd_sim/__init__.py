"""herd-sim: a faithful Ollama emulator. Its public face for tests is :mod:`herd.testing`."""
