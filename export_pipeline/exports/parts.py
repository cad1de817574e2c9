"""The parts of an export completed so far, recorded one by one as they are finished, so that a retry after a
crash keeps them and continues from the last key instead of exporting everything again."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.clock import now_utc
from export_pipeline.db import export_parts, export_requests
from export_pipeline.engine.serialize import WrittenFile
from export_pipeline.exports.requests import ExportState


@dataclass(frozen=True)
class RecordedPart:
    index: int
    file: WrittenFile
    last_key: tuple  # the paging key of the part's last row: the next part starts strictly after it


def encode_key(key: Sequence[object]) -> list:
    """A paging key as JSON: times and UUIDs tagged so they come back as the same types."""
    out: list = []
    for value in key:
        if isinstance(value, datetime):
            out.append({"datetime": value.isoformat()})
        elif isinstance(value, uuid.UUID):
            out.append({"uuid": str(value)})
        elif isinstance(value, bytes):
            out.append({"bytes": value.hex()})
        else:
            out.append(value)
    return out


def decode_key(values: Sequence[object]) -> tuple:
    def one(value: object) -> object:
        if isinstance(value, dict):
            if "datetime" in value:
                return datetime.fromisoformat(value["datetime"])
            if "uuid" in value:
                return uuid.UUID(value["uuid"])
            if "bytes" in value:
                return bytes.fromhex(value["bytes"])
        return value

    return tuple(one(value) for value in values)


class PartLog:
    """Rows of `export_parts`."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def record(self, export_id: str, run_id: str, index: int, file: WrittenFile, last_key: Sequence[object]) -> bool:
        """Record a finished part, only while `run_id` still owns the running request (a run that lost its
        claim must not add parts to the retry's). Returns whether it was recorded."""
        with self.engine.begin() as conn:
            owner = conn.execute(
                sa.select(export_requests.c.id).where(
                    export_requests.c.id == export_id, export_requests.c.run_id == run_id,
                    export_requests.c.state == ExportState.RUNNING.value,
                )
            ).first()
            if owner is None:
                return False
            conn.execute(sa.delete(export_parts).where(export_parts.c.export_id == export_id,
                                                        export_parts.c.part == index))
            conn.execute(sa.insert(export_parts).values(
                export_id=export_id, part=index, name=file.name, rows=file.rows, bytes=file.bytes,
                sha256=file.sha256, last_key=encode_key(last_key), recorded_at=now_utc(),
            ))
        return True

    def resumable(self, export_id: str, prefix: str) -> list[RecordedPart]:
        """The recorded parts a retry keeps: the unbroken run from part 0 (a part not recorded, e.g. because
        rows sharing a key straddled its end, ends what can be resumed)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(export_parts).where(export_parts.c.export_id == export_id).order_by(export_parts.c.part)
            ).all()
        parts: list[RecordedPart] = []
        for row in rows:
            m = row._mapping
            if m["part"] != len(parts):
                break
            file = WrittenFile(m["name"], f"{prefix}/{m['name']}", m["rows"], m["bytes"], m["sha256"])
            parts.append(RecordedPart(m["part"], file, decode_key(m["last_key"])))
        return parts

    def forget(self, export_id: str, *, from_part: int = 0) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(export_parts).where(export_parts.c.export_id == export_id,
                                                        export_parts.c.part >= from_part))
