"""Customer-service answering over knowledge bases: ingest, chunk, index, retrieve, answer."""
