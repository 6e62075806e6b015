"""Short text for table cells: sizes, rates, ages and bars."""

from __future__ import annotations

from typing import Any

BAR_WIDTH = 10


def size(value: Any) -> str:
    """Format a byte count with a binary unit, or `-` when unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def bar(fraction: float | None, width: int = BAR_WIDTH) -> str:
    """Draw a bar of `width` cells for a fraction in [0, 1]; None draws dashes."""
    if fraction is None:
        return "-" * width
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def number(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.{digits}f}"
