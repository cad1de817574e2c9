"""The export engine: what to export (`spec`: a `Resource` in a `Format` with a `Compression`, and `request`, the
request model every interface derives its fields from), how a model is declared (`model`), the streamed path
from ClickHouse to files (`extract`, `encode_sql`, `csv_blocks`, `encoders`, `serialize`), and small computed
tables written whole (`tables`, `frames`). It knows no stored request, no run, no destination: the domains
(`exports`, `batch_exports`) stand on it (docs/architecture.md)."""
