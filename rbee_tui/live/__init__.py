"""The TUI's data layer: the queen's streams, cluster state, narration and preferences.

Nothing here imports Textual, so it can be tested and reused without a terminal.
"""
