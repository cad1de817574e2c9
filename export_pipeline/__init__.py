"""Product-analytics export service: ClickHouse -> Polars -> object storage, orchestrated by Dagster."""

import os

# Arrow's allocator, read once when pyarrow loads (so here, before any of our modules imports it). Its default,
# mimalloc, holds on to what the Parquet writer frees: a 10M-event Parquet export peaked 30 MB higher than
# with jemalloc, at the same speed (docs/benchmarks.md). A value set in the environment wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
