"""API load benchmark: the events endpoint under concurrent clients, and the API's memory over many requests.

    python -m bench.api_load [--events 200000] [--clients 20] [--requests-per-client 25] [--rss-requests 2000]
                             [--output docs/benchmarks.md]

Run from the repository root. Bounded and loopback only: a throwaway EXPORT_PIPELINE_HOME (its own chDB,
SQLite and folder) is seeded through the CLI, then `export-pipeline api` serves it on 127.0.0.1 in a
subprocess. Measured against that process:

- RSS after 200 and after `--rss-requests` sequential events-page requests (the API keeps one engine session
  open; opening chDB per request used to add ~2.5 MB per request for good);
- latency of `GET /api/v1/projects/1/events?limit=100`: one client alone (the RSS phase), then `--clients`
  threads at once, each making `--requests-per-client` requests: p50, p99, max, and requests/s.

Only the section between the `bench:api_load` markers of the output file is replaced (appended if absent).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from bench.report import cpu_count, cpu_model, log, update_markdown

BIN = Path(sys.executable).parent
SECTION = "api_load"


def _cli(env: dict, *args: str) -> str:
    done = subprocess.run([str(BIN / "export-pipeline"), *args], env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise SystemExit(f"export-pipeline {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests-per-client", type=int, default=25)
    parser.add_argument("--rss-requests", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="export-pipeline-api-load-"))
    env = {**os.environ, "EXPORT_PIPELINE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    for name in ("CLICKHOUSE_URL", "EXPORT_STORAGE_URL", "EXPORT_PIPELINE_DATABASE_URL"):
        env.pop(name, None)
    log(f"seeding {args.events:,} events into {home}", bench=SECTION)
    _cli(env, "init")
    _cli(env, "seed", "--events", str(args.events), "--projects", "1")
    _cli(env, "members", "add", "--project-id", "1", "--user", "bench", "--role", "maintainer")
    token = _cli(env, "tokens", "create", "--user", "bench").strip()

    port = _free_port()
    api = subprocess.Popen([str(BIN / "export-pipeline"), "api", "--host", "127.0.0.1", "--port", str(port)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/v1/projects/1/events?limit=100"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(headers=headers, timeout=60) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.get(url).raise_for_status()
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or api.poll() is not None:
                        raise SystemExit("the API did not start") from None
                    time.sleep(0.2)
            process = psutil.Process(api.pid)
            rss = {}
            alone: list[float] = []
            for done in range(1, args.rss_requests + 1):
                start = time.perf_counter()
                http.get(url).raise_for_status()
                alone.append(time.perf_counter() - start)
                if done in (200, args.rss_requests):
                    rss[done] = process.memory_info().rss
                    log(f"RSS after {done:,} requests: {rss[done] / 2**20:.0f} MiB", bench=SECTION)

        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def client() -> None:
            with httpx.Client(headers=headers, timeout=120) as http:
                for _ in range(args.requests_per_client):
                    start = time.perf_counter()
                    response = http.get(url)
                    took = time.perf_counter() - start
                    with lock:
                        latencies.append(took)
                        if response.status_code != 200:
                            failures.append(str(response.status_code))

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        rss_loaded = process.memory_info().rss
    finally:
        api.terminate()
        api.wait(timeout=30)

    growth = rss[args.rss_requests] / rss[200] - 1
    command = "python -m bench.api_load " + shlex.join(argv if argv is not None else sys.argv[1:])
    body = "\n".join([
        "## HTTP API under load (events endpoint)",
        "",
        f"`{command.strip()}` — {args.events:,} seeded events, embedded chDB, one API process (uvicorn), "
        f"loopback; {cpu_model()}, {cpu_count()} CPUs.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| RSS after 200 requests | {rss[200] / 2**20:.0f} MiB |",
        f"| RSS after {args.rss_requests:,} requests | {rss[args.rss_requests] / 2**20:.0f} MiB "
        f"({growth:+.1%}) |",
        f"| RSS after the concurrent phase | {rss_loaded / 2**20:.0f} MiB |",
        f"| 1 client, {args.rss_requests:,} requests in a row: p50 / p99 | {statistics.median(alone) * 1000:.0f} ms / "
        f"{_percentile(alone, 0.99) * 1000:.0f} ms |",
        f"| {args.clients} concurrent clients × {args.requests_per_client} requests: p50 | "
        f"{statistics.median(latencies) * 1000:.0f} ms |",
        f"| p99 | {_percentile(latencies, 0.99) * 1000:.0f} ms |",
        f"| max | {max(latencies) * 1000:.0f} ms |",
        f"| throughput | {len(latencies) / wall:.1f} requests/s |",
        f"| non-200 responses | {len(failures)} |",
    ])
    print(body)
    update_markdown(args.output, SECTION, body)
    if failures or growth > 0.10:
        raise SystemExit(f"failed: {len(failures)} non-200 responses, RSS growth {growth:+.1%} (limit +10%)")


if __name__ == "__main__":
    main()
