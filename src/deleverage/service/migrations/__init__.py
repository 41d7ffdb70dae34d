"""Alembic migrations of the risk service's database (run at start-up by ``Storage``)."""
