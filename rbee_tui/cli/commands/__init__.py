"""The `rbee --no-tui` commands, one module per group; each registers its parsers."""
