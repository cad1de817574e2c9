"""The seeded projects' app-database side of people: group type names and two demo cohorts (one static, one
dynamic), each created once: seeding again finds and keeps them."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from export_pipeline.cohorts.store import Cohort, CohortStore
from export_pipeline.models.group_types import group_type_names, set_group_type

STATIC_NAME = "Demo: hand-picked customers"
DYNAMIC_NAME = "Demo: engaged enterprise users"
# Persons on the enterprise plan, or who viewed at least 5 pages in the last 30 days (as of each export).
DYNAMIC_DEFINITION = {"match": "any", "filters": [
    {"type": "property", "key": "plan", "operator": "exact", "value": "enterprise"},
    {"type": "behavioral", "event": "$pageview", "min_count": 5, "days": 30},
]}


def seed_app_people(engine: Engine, project_id: int, *, static_people: list[str], created_by: str = "seed") -> list[Cohort]:
    """Name group type 0 `organization` (unless named) and create the demo cohorts that are missing."""
    if 0 not in group_type_names(engine, project_id):
        set_group_type(engine, project_id, 0, "organization")
    store = CohortStore(engine)
    existing = {cohort.name: cohort for cohort in store.list(project_id, limit=1000)}
    cohorts = []
    if STATIC_NAME in existing:
        cohorts.append(existing[STATIC_NAME])
    else:
        cohorts.append(store.create(project_id, name=STATIC_NAME, kind="static", created_by=created_by,
                                    people=static_people))
    if DYNAMIC_NAME in existing:
        cohorts.append(existing[DYNAMIC_NAME])
    else:
        cohorts.append(store.create(project_id, name=DYNAMIC_NAME, kind="dynamic", created_by=created_by,
                                    definition=DYNAMIC_DEFINITION))
    return cohorts
