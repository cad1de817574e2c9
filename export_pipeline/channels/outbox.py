"""The outbox: where a message goes when its channel has no credentials (no SendGrid key, no Slack token), so
that the embedded default sends nothing yet shows exactly what would have been sent.

Everything lands under `$EXPORT_PIPELINE_HOME/outbox/`, as one JSON file or one folder per message. Each appears
whole or not at all: it is written under a hidden temporary name, then renamed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path


def safe_name(part: str) -> str:
    """`part` usable in a file name: anything but letters, digits, `.`, `_` and `-` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", part).strip(".") or "_"


def json_bytes(payload: object) -> bytes:
    """How every outbox JSON is written: indented, UTF-8 as is, a final newline."""
    return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


class Outbox:
    def __init__(self, root: Path):
        self.root = root

    def write_file(self, name: str, content: bytes) -> Path:
        """`content` as `<root>/<name>`. Raises OSError."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        descriptor, temp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".partial")
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return path

    def write_folder(self, name: str, files: dict[str, bytes]) -> tuple[Path, bool]:
        """`files` (file name: content) in `<root>/<name>/`, and whether this call wrote them: a folder that is
        already there is the same message written before (a re-run, or a concurrent run that got there first),
        so it is kept as it is. Raises OSError."""
        folder = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            return folder, False
        draft = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{name}.", suffix=".partial"))
        try:
            for file_name, content in files.items():
                (draft / file_name).write_bytes(content)
            os.rename(draft, folder)
        except OSError:
            shutil.rmtree(draft, ignore_errors=True)
            if folder.is_dir():  # a concurrent run renamed its copy first: the message is there
                return folder, False
            raise
        except BaseException:
            shutil.rmtree(draft, ignore_errors=True)
            raise
        return folder, True
