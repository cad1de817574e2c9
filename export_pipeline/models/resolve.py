"""What a persons, groups or cohort request looks up in the app database when it is stored: the group
type's index and name, the cohort's definition (a static cohort's person ids). Stored with the request, so a
retried or delayed run exports the same rows, and a bad group type or cohort is refused up front."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Engine

from export_pipeline.cohorts.store import CohortStore
from export_pipeline.engine.resources import Resource
from export_pipeline.engine.spec import ExportSpec
from export_pipeline.models.group_types import resolve_group_type


def resolve_spec(spec: ExportSpec, engine: Engine) -> ExportSpec:
    resolved: dict = {}
    if spec.resource is Resource.GROUPS and spec.group_type is not None:
        index, name = resolve_group_type(engine, spec.project_id, spec.group_type)
        resolved.update(group_type_index=index, group_type_name=name)
    if spec.cohort_id is not None:
        resolved["cohort"] = cohort_snapshot(CohortStore(engine), spec.project_id, spec.cohort_id)
    return replace(spec, resolved=resolved) if resolved else spec


def cohort_snapshot(store: CohortStore, project_id: int, cohort_id: int) -> dict:
    cohort = store.require(project_id, cohort_id)
    if cohort.kind == "static":
        return {"kind": "static", "person_ids": store.people(cohort.id)}
    return {"kind": "dynamic", "definition": cohort.definition}
