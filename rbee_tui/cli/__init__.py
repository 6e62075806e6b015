"""The headless keeper, `rbee --no-tui`: stdout is data, stderr is narration and diagnostics."""
