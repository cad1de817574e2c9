"""Dagster glue: thin wrappers over the plain modules in export_pipeline.*, one file per domain."""
