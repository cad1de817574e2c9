"""Run one stored export in this process and kill -9 it once `--kill-after-parts` parts are recorded: a crash
with no chance to clean up, one chunk into the part after, for the reconciler and resume tests.

    python -m export_pipeline_tests.fakes.crashing_export EXPORT_ID STORAGE_URL RUN_ID KILL_AFTER_PARTS
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from export_pipeline.exports.deps import build_deps
from export_pipeline.exports.parts import PartLog
from export_pipeline.exports.run import run_export
from export_pipeline.settings import Settings


def main(export_id: str, storage_url: str, run_id: str, kill_after_parts: int) -> None:
    deps = build_deps(Settings(), storage_url=storage_url)
    parts = PartLog(deps.engine)

    chunks_after = 0

    def maybe_die(_progress: object) -> None:
        nonlocal chunks_after
        # One chunk into the next part: a part closes with a chunk, so dying right then would leave no partial.
        if len(parts.resumable(export_id, "-")) >= kill_after_parts:
            chunks_after += 1
            if chunks_after == 2:
                os.kill(os.getpid(), signal.SIGKILL)

    run_export(export_id, deps, run_id=run_id, run_is_active=lambda _: False, log=logging.getLogger("crash"),
               on_progress=maybe_die)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
