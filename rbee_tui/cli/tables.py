"""Plain-text tables for stdout: one header row, columns padded with two spaces."""

from __future__ import annotations

from typing import Any

from rbee_tui.cli.render import sanitize


def table(header: list[str], rows: list[list[str]], title: str | None = None) -> str:
    lines = [title] if title else []
    if not rows:
        return "\n".join([*lines, "(none)"])
    cells = [[sanitize(str(cell), keep_newlines=False) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in [header, *cells]]
    return "\n".join(lines)


def records(items: list[dict[str, Any]], columns: list[tuple[str, str]],
            title: str | None = None) -> str:
    """Render dicts as a table; `columns` pairs each header with the key to show."""
    rows = [[_cell(item.get(key)) for _, key in columns] for item in items]
    return table([header for header, _ in columns], rows, title)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def ram(devices: dict[str, Any]) -> str:
    memory = devices.get("ram") if isinstance(devices, dict) else None
    if not isinstance(memory, dict):
        return "-"
    available, total = memory.get("available_bytes"), memory.get("total_bytes")
    if not isinstance(available, int | float) or not isinstance(total, int | float):
        return "-"
    return f"{available / 1e9:.1f}/{total / 1e9:.1f} GB"


def size(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.0f} MB"


def status(data: dict[str, Any]) -> str:
    hives = [[h["hive_id"], h["state"], h["url"], f"{h['heartbeat_age_seconds']:.1f}s",
              ram(h.get("devices", {})), str(h["workers"])] for h in data["hives"]]
    workers = [[w["worker_id"], w["hive_id"], w["model"], w["state"], str(w.get("in_flight", 0)),
                str(w.get("port")), str(w.get("pid"))] for w in data["workers"]]
    models = [[m["id"], m["hive_id"], m["state"], size(m.get("size"))] for m in data["models"]]
    return "\n\n".join([
        table(["ID", "STATE", "URL", "HEARTBEAT", "RAM FREE", "WORKERS"], hives, "HIVES"),
        table(["ID", "HIVE", "MODEL", "STATE", "IN FLIGHT", "PORT", "PID"], workers, "WORKERS"),
        table(["ID", "HIVE", "STATE", "SIZE"], models, "MODELS"),
    ])
