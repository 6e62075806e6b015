"""Widgets shared by the TUI's views."""
