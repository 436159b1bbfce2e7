"""HealthOS reasoning: the advisory layer that scores the record and never writes it."""
