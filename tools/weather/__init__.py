"""Built-in National Weather Service tools, registered through the same entry-point group as any plugin."""
