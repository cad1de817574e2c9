"""Product-analytics export service: ClickHouse -> Polars -> object storage, orchestrated by Dagster."""
