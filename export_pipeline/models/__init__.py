"""The exportable models, one module each (`engine/model.py` says what a model declares).

Adding one: a module here that builds its `ExportModel` from its table, and its entry in `MODELS` under the
`Resource` it exports (docs/architecture.md). Importing this package registers them with `Resource`."""

from __future__ import annotations

from collections.abc import Mapping

from export_pipeline.engine.resources import ModelBuilder, Resource, register_models
from export_pipeline.models.events import events_model
from export_pipeline.models.groups import groups_model
from export_pipeline.models.person_versions import person_versions_model
from export_pipeline.models.persons import cohort_model, persons_model
from export_pipeline.models.recordings import recordings_model

# By the resource an export names; insights and dashboards are files (exports/insight_files.py), not rows.
MODELS: Mapping[Resource, ModelBuilder] = {
    Resource.EVENTS: events_model, Resource.PERSONS: persons_model, Resource.GROUPS: groups_model,
    Resource.COHORT: cohort_model, Resource.RECORDINGS: recordings_model,
}
register_models(MODELS)
# What a batch export of each model copies. Intervals are cut by the model's ingestion-time column
# (`ingested_at`); a model without one cannot be a batch export (refused at create). Persons are copied as the
# versions ingested (person_versions.py), not as the latest state a one-off export reads.
BATCH_MODELS: dict[str, ModelBuilder] = {"events": events_model, "persons": person_versions_model,
                                         "groups": groups_model, "cohort": cohort_model}
