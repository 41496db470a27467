"""Agents over Loom's applications (issue 33): built-in tools (tools.py), served over MCP by loom.serve.mcp_server."""
