"""Image generation with a local diffusers pipeline (extra ``[image]``).

Only where the weights are on disk: the pipeline is loaded from ``path`` with
``local_files_only``, never fetched from a hub. A job whose client goes away is
interrupted at the next denoising step.
"""

from __future__ import annotations

import io
import secrets
import threading
from pathlib import Path
from typing import Any, ClassVar

from herd_services.config import DiffusersModel, ServicesConfigError
from herd_services.jobs import BadInput, Engine, JobCancelled

__all__ = ["DiffusersEngine", "weights_present"]


def weights_present(path: str) -> bool:
    """True when ``path`` holds a diffusers pipeline (its ``model_index.json``)."""
    return (Path(path).expanduser() / "model_index.json").is_file()


class DiffusersEngine(Engine):
    """A ``diffusers.DiffusionPipeline`` (Stable Diffusion, SDXL, FLUX, ...)."""

    capability: ClassVar[str] = "image"

    def __init__(self, config: DiffusersModel, jobs: int = 1, pipeline: Any = None) -> None:
        super().__init__(config.name, jobs)
        self.config = config
        if pipeline is None and not weights_present(config.path):
            raise ServicesConfigError(
                f"image model {config.name!r}: no diffusers pipeline at {config.path}"
            )
        self._pipeline = pipeline

    def load(self) -> None:
        if self._pipeline is not None:
            return
        import torch
        from diffusers import DiffusionPipeline

        pipeline = DiffusionPipeline.from_pretrained(
            str(Path(self.config.path).expanduser()),
            torch_dtype=getattr(torch, self.config.dtype),
            local_files_only=True,
        )
        self._pipeline = pipeline.to(self.config.device)

    def generate(
        self, request: dict[str, Any], *, cancel: threading.Event
    ) -> list[tuple[bytes, int]]:
        """PNG images for ``request`` (prompt, negative_prompt, width, height, steps,
        seed, guidance, n), each with the seed that made it."""
        config = self.config
        n = int(request.get("n") or 1)
        base_seed = request.get("seed")
        if base_seed is None:
            base_seed = secrets.randbelow(2**31)
        width = int(request.get("width") or config.width)
        height = int(request.get("height") or config.height)
        if width % 8 or height % 8:
            raise BadInput("width and height must be multiples of 8 for diffusion models")

        def stop_if_cancelled(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> Any:
            if cancel.is_set():
                raise JobCancelled()
            return kwargs

        images = []
        for index in range(n):
            seed = int(base_seed) + index
            generator = _generator(seed, config.device)
            result = self._pipeline(
                prompt=request["prompt"],
                negative_prompt=request.get("negative_prompt") or None,
                width=width,
                height=height,
                num_inference_steps=int(request.get("steps") or config.steps),
                guidance_scale=float(
                    request["guidance"] if request.get("guidance") is not None else config.guidance
                ),
                generator=generator,
                callback_on_step_end=stop_if_cancelled,
            )
            buffer = io.BytesIO()
            result.images[0].save(buffer, format="PNG")
            images.append((buffer.getvalue(), seed))
        return images


def _generator(seed: int, device: str) -> Any:
    try:
        import torch
    except ImportError:  # a stand-in pipeline in tests needs no torch
        return None
    return torch.Generator(device="cpu" if device == "mps" else device).manual_seed(seed)
