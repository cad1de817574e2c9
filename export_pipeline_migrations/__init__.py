"""Alembic migrations of the app database (see docs/migrations.md); `export_pipeline.db.upgrade_schema` runs them."""
