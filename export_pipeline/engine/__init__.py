"""The export engine: what to export (`spec`), how a model is declared (`model`), and the streamed path from
ClickHouse to files (`extract`, `encode_sql`, `csv_blocks`, `serialize`). It knows no request, no run, no
destination: the domains (`exports`, `batch_exports`) stand on it (docs/architecture.md)."""
