"""The durable transport queue: a message and its recipients are committed before the 250."""
