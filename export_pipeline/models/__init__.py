"""The exportable models, one module each (`base.py` says what a model declares).

Adding one: a module here that builds its `ExportModel` from its table, and its entry in `MODELS`."""

from __future__ import annotations

from collections.abc import Callable

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.engine.model import ExportModel
from export_pipeline.models.events import events_model
from export_pipeline.models.groups import groups_model
from export_pipeline.models.person_versions import person_versions_model
from export_pipeline.models.persons import cohort_model, persons_model

# By the `resource` an export names; insights and dashboards are files (exports/insight_files.py), not rows.
MODELS: dict[str, Callable[[EventsTable], ExportModel]] = {
    "events": events_model, "persons": persons_model, "groups": groups_model, "cohort": cohort_model,
}
# What a batch export of each model copies. Intervals are cut by the model's ingestion-time column
# (`ingested_at`); a model without one cannot be a batch export (refused at create). Persons are copied as the
# versions ingested (person_versions.py), not as the latest state a one-off export reads.
BATCH_MODELS: dict[str, Callable[[EventsTable], ExportModel]] = {**MODELS, "persons": person_versions_model}
