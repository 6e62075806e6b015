"""Daemons of rbee (queen, hive, worker) and the core they share with the keeper."""

from __future__ import annotations

__version__ = "0.1.0"
