"""The gateway: upstream MCP servers whose tools join Skywarden's own (docs/gateway.md)."""
