"""What the agent reads from its machine: CPU, memory, disk and GPUs.

psutil gives CPU, RAM, swap and disk the same way on Linux, macOS and Windows (reading
``/proc`` by hand would cover Linux only). NVIDIA GPUs are read through ``pynvml``
(package ``nvidia-ml-py``, extra ``herd-gateway[nvidia]``) when it is installed and a
driver answers; any other machine reports no GPUs and carries on.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
from herd.protocol.heartbeat import GpuInfo, MachineInfo

__all__ = ["GpuProbe", "MachineProbe", "find_ollama_environment", "models_dir"]

log = logging.getLogger("herd_node")

_PSI_MEMORY = Path("/proc/pressure/memory")


class GpuProbe:
    """Reads NVIDIA GPUs through pynvml; reports none when pynvml or a driver is missing."""

    def __init__(self) -> None:
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception as exc:  # no package, no driver, no GPU: all mean "no GPUs"
            log.debug("no NVIDIA GPUs readable: %s", exc)

    def read(self) -> list[GpuInfo]:
        nvml = self._nvml
        if nvml is None:
            return []
        gpus: list[GpuInfo] = []
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception as exc:
            log.debug("pynvml failed: %s", exc)
            return []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                name = nvml.nvmlDeviceGetName(handle)
                gpu = GpuInfo(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    vram_total=int(memory.total),
                    vram_used=int(memory.used),
                )
            except Exception as exc:
                log.debug("pynvml could not read GPU %d: %s", index, exc)
                continue
            with contextlib.suppress(Exception):
                gpu.temperature = float(
                    nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                )
            with contextlib.suppress(Exception):
                gpu.utilization = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            gpus.append(gpu)
        return gpus


class MachineProbe:
    """Reads the machine; blocking but quick, so the agent calls it in a worker thread.

    Args:
        disk_path: The directory whose disk's free space is reported (Ollama's models).
    """

    def __init__(self, disk_path: str | os.PathLike[str] = "/") -> None:
        self.disk_path = str(disk_path)
        self.gpus = GpuProbe()
        psutil.cpu_percent(interval=None)  # the first reading only starts the clock

    def read(self) -> MachineInfo:
        memory = psutil.virtual_memory()
        info = MachineInfo(
            cpu_count=psutil.cpu_count() or 0,
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            ram_total=int(memory.total),
            ram_available=int(memory.available),
            ram_pressure=_memory_pressure(),
            swap_used=_swap_used(),
            gpus=self.gpus.read(),
        )
        try:
            disk = psutil.disk_usage(self.disk_path)
            info.disk_total, info.disk_free = int(disk.total), int(disk.free)
        except OSError as exc:
            log.debug("cannot read disk usage of %s: %s", self.disk_path, exc)
        return info


def _swap_used() -> int:
    try:
        return int(psutil.swap_memory().used)
    except Exception:  # some containers have no swap accounting
        return 0


def _memory_pressure() -> float | None:
    """Linux PSI: the share of the last 10 s some task stalled waiting for memory."""
    try:
        text = _PSI_MEMORY.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for part in line.split():
                if part.startswith("avg10="):
                    try:
                        return float(part[6:])
                    except ValueError:
                        return None
    return None


def find_ollama_environment() -> dict[str, str]:
    """The environment of a running ``ollama serve`` process, when this user may read it.

    Ollama's own settings (``OLLAMA_NUM_PARALLEL``, ``OLLAMA_MAX_LOADED_MODELS``,
    ``OLLAMA_MODELS``) live in the service's environment, not the agent's.
    Returns an empty dict when no such process is found or it belongs to another user.
    """
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            name = (process.info.get("name") or "").lower()
            cmdline = process.info.get("cmdline") or []
            if not name.startswith("ollama") or "serve" not in cmdline:
                continue
            environ = process.environ()
        except (psutil.Error, OSError):
            continue
        return {k: v for k, v in environ.items() if k.startswith("OLLAMA_")}
    return {}


def models_dir(environ: Mapping[str, str]) -> str:
    """Where Ollama keeps its models: ``OLLAMA_MODELS``, else its usual places, else ``/``."""
    candidates = [
        environ.get("OLLAMA_MODELS", ""),
        os.environ.get("OLLAMA_MODELS", ""),
        str(Path.home() / ".ollama" / "models"),
        "/usr/share/ollama/.ollama/models",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return candidate
    return "/"
