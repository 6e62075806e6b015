"""Short text for table cells: sizes, rates, ages and bars."""

from __future__ import annotations

import re
from typing import Any

BAR_WIDTH = 10
# Quantisation names as they appear in GGUF file names, e.g. Q4_K_M, Q8_0, F16, IQ3_XS.
_QUANT = re.compile(r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|F16|F32|BF16)(?![A-Za-z0-9])",
                    re.IGNORECASE)


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


def quantisation(*names: Any) -> str:
    """Find a GGUF quantisation name (e.g. `Q4_K_M`) in model names or sources."""
    for name in names:
        match = _QUANT.search(str(name or ""))
        if match:
            return match.group(1).upper()
    return "-"


def number(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.{digits}f}"
