"""Export benchmark: our export path against ClickHouse writing the same rows itself. Run from the
repository root:

    python -m bench.exports [--events 5000000] [--formats ndjson,json,csv,parquet]
                            [--compression none] [--home .data/bench] [--output docs/benchmarks.md]
                            [--reuse] [--repeat 1] [--rss-check]

Everything runs in its own EXPORT_PIPELINE_HOME (default `.data/bench`: its own chDB folder, SQLite database
and export folder), so the demo data is never touched. The parent seeds the events, closes every chDB session
and then runs each measurement in a fresh Python process, so that the peak RSS reported is that of one
measurement alone (GNU `/usr/bin/time -f '%e %M'` when present, else the child's own
`getrusage(RUSAGE_SELF).ru_maxrss`). Measurements:

- fixed cost: import the export modules, open the embedded engine, `SELECT 1`;
- ClickHouse native: `SELECT ... ORDER BY timestamp, uuid INTO OUTFILE ... FORMAT JSONEachRow` through the same
  engine, uncompressed;
- ours: a full `run_export` per format (request, access check, count, chunked extract, serialize, checksums,
  manifest) into a local folder.

The markdown is generated: `docs/benchmarks.md` only gets the section between the `bench:exports` markers
(`bench:exports-rss` for `--rss-check`) replaced; other sections are left alone.
"""
