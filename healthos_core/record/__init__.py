"""The unified patient record: entities and the record service."""
