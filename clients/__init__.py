"""Skywarden client library (filled by the client issue)."""
