"""`queen-rbee`: the orchestrator; jobs, hive registry, scheduling and the token relay."""
