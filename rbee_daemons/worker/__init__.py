"""`llm-worker-rbee`: one model per process, served over an OpenAI-shaped streaming API."""
