"""Cohorts in the app database: CRUD, and a static cohort's person ids (set from a list or a CSV upload)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.clock import as_utc, now_utc
from export_pipeline.cohorts.definition import parse_definition
from export_pipeline.db import cohort_people, cohorts, delete_rows
from export_pipeline.errors import InvalidRequest, NotFound

KINDS = ("static", "dynamic")
MAX_STATIC_PEOPLE = 100_000  # the ids travel with each export request (models/resolve.py)


@dataclass(frozen=True)
class Cohort:
    id: int
    project_id: int
    name: str
    kind: str
    definition: dict | None
    created_by: str
    created_at: datetime
    updated_at: datetime


def person_ids(values: Iterable[object]) -> list[str]:
    """Distinct, canonical person UUIDs, in first-seen order; anything else is refused."""
    seen: dict[str, None] = {}
    for value in values:
        text = str(value).strip()
        try:
            seen[str(uuid.UUID(text))] = None
        except ValueError:
            raise InvalidRequest(f"{text[:80]!r} is not a person id (a UUID).", details={"person_ids": "must be UUIDs"}) from None
    if len(seen) > MAX_STATIC_PEOPLE:
        raise InvalidRequest(f"A static cohort holds at most {MAX_STATIC_PEOPLE:,} persons, got {len(seen):,}.")
    return list(seen)


def person_ids_from_csv(data: bytes) -> list[str]:
    """The first column of a CSV (a header row such as `person_id` or `id` is skipped)."""
    rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) if row and row[0].strip()]
    if rows and rows[0][0].strip().lower() in ("person_id", "id", "person", "uuid"):
        rows = rows[1:]
    return person_ids(row[0] for row in rows)


class CohortStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, project_id: int, *, name: str, kind: str, created_by: str, definition: object = None,
               people: Iterable[object] = ()) -> Cohort:
        name, stored = _validate(name, kind, definition)
        ids = person_ids(people) if kind == "static" else []
        now = now_utc()
        with self.engine.begin() as conn:
            cohort_id = conn.execute(sa.insert(cohorts).values(
                project_id=project_id, name=name, kind=kind, definition=stored, created_by=created_by,
                created_at=now, updated_at=now,
            )).inserted_primary_key[0]
            _insert_people(conn, cohort_id, ids)
        return self.require(project_id, cohort_id)

    def update(self, project_id: int, cohort_id: int, *, name: str | None = None, definition: object = None,
               people: Iterable[object] | None = None) -> Cohort:
        cohort = self.require(project_id, cohort_id)
        new_name, stored = _validate(name or cohort.name, cohort.kind,
                                     definition if definition is not None else cohort.definition)
        if people is not None and cohort.kind != "static":
            raise InvalidRequest("Only a static cohort has a list of persons.")
        with self.engine.begin() as conn:
            conn.execute(sa.update(cohorts).where(cohorts.c.id == cohort_id)
                         .values(name=new_name, definition=stored, updated_at=now_utc()))
            if people is not None:
                ids = person_ids(people)
                conn.execute(sa.delete(cohort_people).where(cohort_people.c.cohort_id == cohort_id))
                _insert_people(conn, cohort_id, ids)
        return self.require(project_id, cohort_id)

    def delete(self, project_id: int, cohort_id: int) -> None:
        self.require(project_id, cohort_id)
        delete_rows(self.engine, cohort_id, cohort_people.c.cohort_id, cohorts.c.id)

    def get(self, project_id: int, cohort_id: int) -> Cohort | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(cohorts).where(cohorts.c.id == cohort_id,
                                                        cohorts.c.project_id == project_id)).first()
        return _cohort(row) if row else None

    def require(self, project_id: int, cohort_id: int) -> Cohort:
        cohort = self.get(project_id, cohort_id)
        if cohort is None:
            raise NotFound(f"No cohort {cohort_id} in project {project_id}.")
        return cohort

    def list(self, project_id: int, *, after_id: int = 0, limit: int = 100) -> list[Cohort]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(cohorts).where(cohorts.c.project_id == project_id, cohorts.c.id > after_id)
                                .order_by(cohorts.c.id).limit(limit)).all()
        return [_cohort(row) for row in rows]

    def people(self, cohort_id: int) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(cohort_people.c.person_id)
                                     .where(cohort_people.c.cohort_id == cohort_id)
                                     .order_by(cohort_people.c.person_id)).scalars())


def _validate(name: str, kind: str, definition: object) -> tuple[str, dict | None]:
    name = str(name or "").strip()
    if not 1 <= len(name) <= 255:
        raise InvalidRequest("A cohort's name must be 1 to 255 characters.", details={"name": "1 to 255 characters"})
    if kind not in KINDS:
        raise InvalidRequest(f"A cohort is static or dynamic, not {kind!r}.", details={"kind": "static or dynamic"})
    if kind == "static":
        if definition is not None:
            raise InvalidRequest("A static cohort has persons, not a definition.", details={"definition": "static"})
        return name, None
    return name, parse_definition(definition).as_json()


def _insert_people(conn: sa.Connection, cohort_id: int, ids: list[str]) -> None:
    if ids:
        conn.execute(sa.insert(cohort_people), [{"cohort_id": cohort_id, "person_id": pid} for pid in ids])


def _cohort(row: sa.Row) -> Cohort:
    m = row._mapping
    return Cohort(m["id"], m["project_id"], m["name"], m["kind"], m["definition"], m["created_by"],
                  as_utc(m["created_at"]), as_utc(m["updated_at"]))  # type: ignore[arg-type]
