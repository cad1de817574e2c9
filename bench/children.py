"""Measurements in fresh processes, for the persons and recordings benches: each job runs as
`python -m <module> --child JOB`, prints one JSON object on its last stdout line, and is watched by GNU
`/usr/bin/time` (peak RSS of the whole process: interpreter, imports, the chDB engine and the work)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.exports.data import bench_env

TIME_BIN = "/usr/bin/time"


def run_child(module: str, home: Path, job: dict, *, extra_env: dict[str, str] | None = None) -> dict:
    """Run one job of `module` in a fresh process pinned to `home`; its result, with `rss_mb` when GNU time
    is installed."""
    command = [sys.executable, "-m", module, "--child", json.dumps(job)]
    timed = [TIME_BIN, "-f", "%e %M", *command] if Path(TIME_BIN).exists() else command
    env = {**os.environ, **bench_env(home), **(extra_env or {})}
    done = subprocess.run(timed, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{module} child {job} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if timed is not command:
        result["rss_mb"] = int(done.stderr.strip().splitlines()[-1].split()[1]) / 1024
    return result


def machine_facts() -> str:
    """One line: CPUs, CPU model, load average now."""
    from bench.report import cpu_count, cpu_model

    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{cpu_count()} CPUs (nproc), {cpu_model()}; load average (1 / 5 / 15 min) at the start: {load}"


def bench_parser(module: str, home: str) -> argparse.ArgumentParser:
    """The options every such bench has (its own are added by the caller); `--child` runs one job."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--home", type=Path, default=Path(home))
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def child_main(job_json: str, jobs: dict[str, Callable[..., dict]]) -> None:
    """In a child process: run the job named by its `kind` and print its result for `run_child`."""
    job = json.loads(job_json)
    print(json.dumps(jobs[job.pop("kind")](**job)))
