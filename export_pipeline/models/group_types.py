"""Group type names per project (app database `group_types`): `0 = organization`, … as PostHog maps them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from export_pipeline.db import group_types
from export_pipeline.errors import InvalidRequest

MAX_GROUP_TYPES = 5  # indexes 0-4, as PostHog


def set_group_type(engine: Engine, project_id: int, index: int, name: str) -> None:
    if not 0 <= index < MAX_GROUP_TYPES:
        raise InvalidRequest(f"A group type index is 0 to {MAX_GROUP_TYPES - 1}, got {index}.")
    with engine.begin() as conn:
        conn.execute(sa.delete(group_types).where(group_types.c.project_id == project_id,
                                                  group_types.c.group_type_index == index))
        conn.execute(sa.insert(group_types).values(project_id=project_id, group_type_index=index, name=name))


def group_type_names(engine: Engine, project_id: int) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(group_types.c.group_type_index, group_types.c.name)
                            .where(group_types.c.project_id == project_id)).all()
    return {index: name for index, name in rows}


def resolve_group_type(engine: Engine, project_id: int, requested: str) -> tuple[int, str | None]:
    """A group type given by name or index: (index, name); the name is None for an unnamed index."""
    names = group_type_names(engine, project_id)
    if requested.isdigit():
        index = int(requested)
        if index < MAX_GROUP_TYPES:
            return index, names.get(index)
    for index, name in names.items():
        if name == requested:
            return index, name
    known = ", ".join(f"{name} ({index})" for index, name in sorted(names.items())) or "none named"
    raise InvalidRequest(
        f"Project {project_id} has no group type {requested!r}.",
        hint=f"Group types: {known}; an index 0-{MAX_GROUP_TYPES - 1} works too.",
        details={"group_type": f"unknown group type {requested!r}"},
    )
