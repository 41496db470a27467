"""The OpenAI-compatible HTTP server: `create_app()` builds it, `loom serve` runs it with uvicorn."""
