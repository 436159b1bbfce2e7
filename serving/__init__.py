"""HealthOS serving: the FastAPI app, CDS Hooks, command center and the ``healthos`` CLI."""
