"""State every instance of a deployment shares: the Redis connection and the broadcast between instances."""
