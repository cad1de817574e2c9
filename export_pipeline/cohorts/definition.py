"""A dynamic cohort's definition: person property filters and behavioural filters ("performed EVENT at least
N times in the last D days"), all of them (`match: all`) or any of them (`match: any`).

Stored and exchanged as JSON: `{"match": "all", "filters": [{"type": "property", "key", "operator",
"value"}, {"type": "behavioral", "event", "min_count", "days"}]}`."""

from __future__ import annotations

from dataclasses import dataclass

from export_pipeline.engine.filters import PropertyFilter, parse_property_filters
from export_pipeline.errors import InvalidRequest

MAX_FILTERS = 20
MAX_DAYS = 3650


@dataclass(frozen=True)
class Behavioral:
    """Performed `event` at least `min_count` times in the `days` days up to the moment of evaluation."""

    event: str
    min_count: int
    days: int

    def as_json(self) -> dict:
        return {"type": "behavioral", "event": self.event, "min_count": self.min_count, "days": self.days}


@dataclass(frozen=True)
class CohortDefinition:
    match: str  # all | any
    filters: tuple[PropertyFilter | Behavioral, ...]

    def as_json(self) -> dict:
        return {"match": self.match, "filters": [
            {"type": "property", **f.as_json()} if isinstance(f, PropertyFilter) else f.as_json() for f in self.filters
        ]}


def parse_definition(raw: object) -> CohortDefinition:
    errors: dict[str, str] = {}
    definition = _parse(raw, errors)
    if errors or definition is None:
        fields = "; ".join(f"{field}: {message}" for field, message in errors.items())
        raise InvalidRequest(f"Invalid cohort definition: {fields}.", details=errors)
    return definition


def _parse(raw: object, errors: dict[str, str]) -> CohortDefinition | None:
    if not isinstance(raw, dict) or set(raw) - {"match", "filters"}:
        errors["definition"] = "must be an object with match (all|any) and filters"
        return None
    match = raw.get("match", "all")
    if match not in ("all", "any"):
        errors["definition.match"] = f"must be all or any, got {match!r}"
    items = raw.get("filters")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_FILTERS:
        errors["definition.filters"] = f"must be a list of 1 to {MAX_FILTERS} filters"
        return None
    parsed: list[PropertyFilter | Behavioral] = []
    for index, item in enumerate(items):
        field = f"definition.filters.{index}"
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "property":
            parsed += parse_property_filters([{k: v for k, v in item.items() if k != "type"}], field, errors)
        elif kind == "behavioral":
            behavioral = _behavioral(item, field, errors)
            if behavioral:
                parsed.append(behavioral)
        else:
            errors[field] = "must be an object whose type is property or behavioral"
    return CohortDefinition(match, tuple(parsed)) if not errors else None


def _behavioral(item: dict, field: str, errors: dict[str, str]) -> Behavioral | None:
    if set(item) - {"type", "event", "min_count", "days"}:
        errors[field] = "a behavioral filter has event, min_count and days"
        return None
    event, count, days = item.get("event"), item.get("min_count", 1), item.get("days")
    if not isinstance(event, str) or not 1 <= len(event) <= 400:
        errors[field] = "event must be an event name of 1 to 400 characters"
    elif isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10**9:
        errors[field] = f"min_count must be a whole number of at least 1, got {count!r}"
    elif isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        errors[field] = f"days must be a whole number from 1 to {MAX_DAYS}, got {days!r}"
    else:
        return Behavioral(event, count, days)
    return None
