"""API keys and the admin credential: format, hashing, stores, middleware."""
