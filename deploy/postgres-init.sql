-- The app database beside Dagster's own (POSTGRES_DB); both belong to the same role.
CREATE DATABASE export_pipeline;
