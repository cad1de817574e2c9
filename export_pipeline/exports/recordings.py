"""A recordings export: the sessions' index (the recordings model's rows, in the export's format, as part
files) and one file per session in PostHog's recording format (`recording-<session_id>.json[.gz|.zst]`),
each streamed block by block from the snapshot blobs: no recording is ever held in memory whole."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from export_pipeline.engine.compression import Compression
from export_pipeline.engine.extract import ExportQuery, iter_chunks
from export_pipeline.engine.model import object_value
from export_pipeline.engine.serialize import PartWriter, WrittenFile
from export_pipeline.exports.deps import ExportDeps
from export_pipeline.exports.requests import ExportRequest
from export_pipeline.recordings.blobs import RecordingBlobs
from export_pipeline.recordings.document import recording_document
from export_pipeline.storage import storage_from_url


def recording_person(person_id: str | None, distinct_id: str, properties: dict) -> dict | None:
    """The `person` of PostHog's format."""
    if person_id is None:
        return None
    return {"uuid": person_id, "distinct_ids": [distinct_id], "properties": properties}


# What each recording file needs of its index row.
SESSION_COLUMNS = ("session_id", "distinct_id", "person_id", "person_properties")


def write_recordings(request: ExportRequest, deps: ExportDeps, *, log: logging.Logger | logging.LoggerAdapter
                     ) -> list[WrittenFile]:
    spec = request.spec
    blobs = RecordingBlobs(storage_from_url(deps.settings.recordings_storage_url))
    model = spec.resource.model(deps.table)
    tags = {"export-pipeline-export-id": request.id, "export-pipeline-project-id": str(spec.project_id)}
    index = PartWriter(deps.storage, request.storage_prefix, model, spec.format, spec.compression,
                       part_size=deps.settings.part_size_bytes, gzip_level=deps.settings.gzip_level,
                       zstd_level=deps.settings.zstd_level, tags=tags)
    # The recording files are JSON; a Parquet export's codec (zstd by default) compresses them.
    codec = spec.compression
    recordings: list[WrittenFile] = []
    try:
        with deps.clickhouse.session(f"export {request.id}") as session:
            query = ExportQuery(model, spec, request.as_of, escape_formulas=deps.settings.csv_escape_formulas,
                                carry=SESSION_COLUMNS)
            for chunk in iter_chunks(session, query, chunk_bytes=deps.settings.chunk_bytes):
                index.write(chunk)
                for row in chunk.select(list(SESSION_COLUMNS)).to_pylist():
                    person = recording_person(row["person_id"], row["distinct_id"], object_value(row["person_properties"]))
                    pieces = recording_document(blobs, spec.project_id, row["session_id"], person)
                    recordings.append(_write_file(deps, request, f"recording-{row['session_id']}.json", pieces, codec, tags))
                log.info("%s recordings written.", f"{len(recordings):,}")
        return [*index.finish(), *recordings]
    except BaseException:
        index.abort()
        raise


def _write_file(deps: ExportDeps, request: ExportRequest, name: str, pieces: Iterable[bytes], codec: Compression,
                tags: dict[str, str]) -> WrittenFile:
    name += codec.suffix
    key = f"{request.storage_prefix}/{name}"
    writer = deps.storage.open_writer(key, content_type="application/json", tags=tags)
    compress = codec.compressor(gzip_level=deps.settings.gzip_level, zstd_level=deps.settings.zstd_level)
    digest, size, count = hashlib.sha256(), 0, 0
    try:
        for piece in pieces:
            count += 1
            out = compress.compress(piece)
            if out:
                digest.update(out)
                writer.write(out)
                size += len(out)
        tail = compress.flush()
        digest.update(tail)
        writer.write(tail)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    # Its rows are its snapshots: every piece but the document's head and tail.
    return WrittenFile(name, key, max(0, count - 2), size + len(tail), digest.hexdigest())
