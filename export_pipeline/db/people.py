"""What the app database keeps about people: group type names per project, and cohorts."""

import sqlalchemy as sa

from export_pipeline.db.metadata import metadata

# Group type names per project (PostHog's group type mapping): index 0-4 in ClickHouse's groups table.
group_types = sa.Table(
    "group_types",
    metadata,
    sa.Column("project_id", sa.BigInteger, primary_key=True),
    sa.Column("group_type_index", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.UniqueConstraint("project_id", "name", name="uq_group_types_name"),
)

# Cohorts: a static list of person ids (cohort_people) or a dynamic definition evaluated in ClickHouse.
cohorts = sa.Table(
    "cohorts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # static | dynamic
    sa.Column("definition", sa.JSON, nullable=True),  # dynamic: cohorts/definition.py
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

cohort_people = sa.Table(
    "cohort_people",
    metadata,
    sa.Column("cohort_id", sa.Integer, sa.ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("person_id", sa.String(36), primary_key=True),
)
