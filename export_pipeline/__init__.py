"""Product-analytics export service: ClickHouse -> Polars -> object storage, orchestrated by Dagster."""

import os
import sys

# Arrow's allocator, read once when pyarrow loads (so here, before any of our modules imports it). Its default,
# mimalloc, holds on to what the Parquet writer frees: a 10M-event Parquet export peaked 30 MB higher than
# with jemalloc, at the same speed (docs/benchmarks.md). A value set in the environment wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")


class _PandasAbsent:
    """An import finder for which pandas is not installed."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas hidden from pyarrow's first look", name=name)


def _pyarrow_without_pandas() -> None:
    """pyarrow imports pandas (installed: chDB requires it) the first time it converts a Python value or reads a
    timestamp, only to check whether it was handed a pandas object. Nothing here uses pandas, and that import
    cost every export process ~30 MB resident (10M events, `export --wait`: NDJSON 634 -> 603 MB, Parquet
    675 -> 649 MB). pyarrow looks once and remembers the answer, so that one look is made to fail; pandas itself
    stays importable, and pyarrow's own pandas methods (`to_pandas`) still import it when called."""
    if "pandas" in sys.modules:
        return
    sys.meta_path.insert(0, _PandasAbsent)
    try:
        import pyarrow

        pyarrow.scalar(0)  # the first conversion: pyarrow looks for pandas here
    finally:
        sys.meta_path.remove(_PandasAbsent)


_pyarrow_without_pandas()
