"""Skywarden server: a remote MCP tool server on aiohttp, secured with API keys."""

__version__ = "0.1.0"
