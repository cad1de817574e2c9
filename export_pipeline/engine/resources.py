"""What an export is of: each `Resource` carries the formats it comes in, the request fields it takes and
needs, and what writes its files. A row resource's files are its model's rows; the model is registered by the
`models` package (`register_models`), which stands above the engine. A resource whose files are more than its
rows (recordings' snapshots) or no rows at all (an insight's or dashboard's tables or image) has a file
writer, registered by the `exports` package (`register_file_writers`).

Adding a model is its module in `models/` and its entry in `models.MODELS`; a new resource is also its member
here (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from export_pipeline.clickhouse.schema import EventsTable
from export_pipeline.engine.formats import ROW_FORMATS, TABLE_FORMATS, Format, WithTraits
from export_pipeline.engine.model import ExportModel

ModelBuilder = Callable[[EventsTable], ExportModel]
FileWriter = Callable[..., list]  # (request, deps, *, log) -> the files written (exports/run.py)

DATES = ("date_from", "date_to")


@dataclass(frozen=True)
class ResourceTraits:
    description: str
    formats: tuple[Format, ...]
    takes: tuple[str, ...]  # the request fields it takes besides who asks and how the files are written
    requires: tuple[str, ...] = ()
    rows: bool = True  # a model's rows, compressed; otherwise a few small files, never compressed
    noun: str = "rows"  # what one of its rows is ("1,024 persons in 1 file")
    # Why a resource that takes no dates refuses them: (the field the refusal is reported on, the message).
    no_dates: tuple[str, str] | None = None


class Resource(WithTraits):
    """What an export is of; its value is how every interface spells it (lowercase)."""

    EVENTS = "events", ResourceTraits("captured events, by time and event name", ROW_FORMATS, (*DATES, "events"),
                              noun="events")
    PERSONS = "persons", ResourceTraits("persons with all their distinct ids, by creation time, properties or cohort",
                                ROW_FORMATS, (*DATES, "properties", "cohort_id"), noun="persons")
    GROUPS = "groups", ResourceTraits("groups of one type, by creation time or properties", ROW_FORMATS,
                              (*DATES, "properties", "group_type"), requires=("group_type",), noun="groups")
    COHORT = "cohort", ResourceTraits(
        "a cohort's persons", ROW_FORMATS, ("cohort_id",), requires=("cohort_id",), noun="persons",
        no_dates=("date_from", "a cohort export is the cohort's persons as of the request; it takes no dates"))
    RECORDINGS = "recordings", ResourceTraits(
        "session recordings: the sessions' index and one file per recording, by start time, person or length",
        ROW_FORMATS, (*DATES, "distinct_id", "person_id", "min_duration"), noun="rows (sessions and snapshots)")
    INSIGHT = "insight", ResourceTraits(
        "an insight's computed table or its image", TABLE_FORMATS, ("target_id", "width"), requires=("target_id",),
        rows=False, no_dates=("resource", "insight exports take their dates and events from the insight itself"))
    DASHBOARD = "dashboard", ResourceTraits(
        "a dashboard's tiles' tables or its image", TABLE_FORMATS, ("target_id", "width"), requires=("target_id",),
        rows=False, no_dates=("resource", "dashboard exports take their dates and events from the dashboard itself"))

    def model(self, table: EventsTable) -> ExportModel:
        """Its model over `table`'s tables."""
        build = _MODELS.get(self)
        if build is None:
            raise LookupError(f"No model is registered for {self.value} exports: import export_pipeline.models, "
                              "which registers every model, before exporting rows.")
        return build(table)

    @property
    def file_writer(self) -> FileWriter | None:
        """What writes its files when they are not just its model's rows."""
        return _FILE_WRITERS.get(self)


def takers(field: str) -> str:
    """The resources taking `field`, for a refusal ("persons and groups")."""
    return " and ".join(resource.value for resource in Resource if field in resource.takes)


_MODELS: dict[Resource, ModelBuilder] = {}
_FILE_WRITERS: dict[Resource, FileWriter] = {}


def register_models(builders: Mapping[Resource, ModelBuilder]) -> None:
    _register(_MODELS, builders, "model")


def register_file_writers(writers: Mapping[Resource, FileWriter]) -> None:
    _register(_FILE_WRITERS, writers, "file writer")


def _register(registry: dict, entries: Mapping, what: str) -> None:
    for resource, entry in entries.items():
        if registry.get(resource, entry) is not entry:
            raise ValueError(f"{resource.value} exports already have a {what}: {registry[resource]!r}")
        registry[resource] = entry
