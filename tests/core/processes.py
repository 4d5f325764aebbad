"""Real ``herd`` processes for tests: start one, wait for a log line, stop it; and raw bytes
to a server on this machine."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERD = Path(sys.executable).with_name("herd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_until_closed(port: int, payload: bytes) -> bytes:
    """Send ``payload`` on a new connection to 127.0.0.1:``port``; all the server sends
    back until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any HERD_* or OLLAMA_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "OLLAMA_"))}
    return {**env, **extra}


def herd_run(
    args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``herd ARGS`` to its end, capturing stdout and stderr as text."""
    return subprocess.run(
        [str(HERD), *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


def run_herd(args: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Run ``herd ARGS`` to its end; (exit code, stderr)."""
    done = herd_run(args, env, timeout=timeout)
    return done.returncode, done.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class HerdProcess:
    """A ``herd`` router process whose stderr goes to a file the test can read.

    ``open_files`` starts it with that (soft, hard) limit on open files, as a shell's
    ``ulimit -n`` would (POSIX only).
    """

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        open_files: tuple[int, int] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")

        def before_exec() -> None:
            # SIGINT as in a terminal, even when the tests run where it is ignored (a
            # background job), so Ctrl-C is tested as an operator presses it
            _default_sigint()
            if open_files is not None:
                import resource

                resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

        self.process = subprocess.Popen(
            [str(HERD), *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=before_exec,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.text(), re.M)
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"herd exited ({self.process.returncode}):\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} in:\n{self.text()}")
            time.sleep(0.05)

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"herd did not serve {url}:\n{self.text()}")
            time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode
