"""Plain-text tables, sizes and a progress bar for the operator commands."""

from __future__ import annotations

__all__ = ["human_size", "progress_line", "table"]

BAR_WIDTH = 30


def table(head: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = []
    for row in [head, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def human_size(size: float) -> str:
    """Bytes as ``1.9 GB`` (decimal units, as Ollama shows them)."""
    value = float(size or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def progress_line(status: str, completed: object, total: object) -> str:
    """``status [#####-----] 45% 0.9/2.0 GB`` while downloading, else just the status."""
    if not isinstance(total, int | float) or not total:
        return status
    done = float(completed) if isinstance(completed, int | float) else 0.0
    fraction = min(max(done / float(total), 0.0), 1.0)
    filled = int(fraction * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    sizes = f"{human_size(done)}/{human_size(float(total))}"
    return f"{status} [{bar}] {fraction * 100:3.0f}% {sizes}"
