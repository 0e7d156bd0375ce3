"""MCP Streamable HTTP at /mcp: handshake revisions 2025-03-26..2025-11-25 and stateless 2026-07-28."""
