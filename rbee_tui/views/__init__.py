"""The TUI's views: hives, workers, models, jobs, chat and narration."""
