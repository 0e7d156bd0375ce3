"""The admin console at /admin: static ES-module pages over the admin API (docs/console.md)."""
