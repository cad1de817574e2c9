"""The HTTP API (FastAPI): exports and events for project members, behind personal access tokens."""
