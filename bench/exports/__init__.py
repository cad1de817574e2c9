"""Export benchmark: our export path against ClickHouse writing the same rows itself. Run from the
repository root (`make bench`, sizes as `BENCH_EVENTS=1000000,10000000`):

    python -m bench.exports [--events 1000000,10000000] [--formats ndjson,json,csv,parquet]
                            [--compression none] [--home .data/bench] [--output docs/benchmarks.md]
                            [--reuse] [--repeat 1] [--merged]

Everything runs in its own EXPORT_PIPELINE_HOME (default `.data/bench`: its own chDB folder, SQLite database,
Dagster home and export folder), so the demo data is never touched. For each size the table is seeded as
`export-pipeline seed --projects 1 --seed 1` seeds it and never merged: the number of active parts is
printed and reported. Then, per format, three fresh processes: ClickHouse's own `INTO OUTFILE` of the same
rows, our `run_export` alone, and the whole `export-pipeline export --wait` command; plus the engine's own
baseline (open + `SELECT 1`). Wall time and peak RSS of each process come from GNU `/usr/bin/time`. With
`--merged` (`make bench BENCH_ARGS=--merged`), the table is then merged (`OPTIMIZE FINAL`) and native and
`run_export` are measured again: what the parts cost.

The markdown is generated: `docs/benchmarks.md` only gets the section between the `bench:exports` markers
replaced; other sections are left alone.
"""
