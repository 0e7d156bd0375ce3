"""The server side of tool plugins: discovery, the registry, schemas, settings, lifecycle and
the HTTP client plugins call outside APIs with. What plugin authors import is ``skywarden.tools``."""
