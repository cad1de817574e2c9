"""The filters of person-like exports: property filters, and their validation.

A property filter compares one top-level key of a JSON `properties` text; it is compiled to SQL by
`models/properties.py`, every value a bound parameter."""

from __future__ import annotations

from dataclasses import dataclass

OPERATORS = ("exact", "is_not", "icontains", "is_set", "is_not_set", "gt", "lt")
VALUELESS = ("is_set", "is_not_set")
MAX_PROPERTY_FILTERS = 50
MAX_KEY_LENGTH = 400
MAX_VALUE_LENGTH = 1000


@dataclass(frozen=True)
class PropertyFilter:
    key: str
    operator: str
    value: str | float | bool | None = None

    def as_json(self) -> dict:
        return {"key": self.key, "operator": self.operator, "value": self.value}


def parse_property_filters(raw: object, field: str, errors: dict[str, str]) -> tuple[PropertyFilter, ...]:
    """`[{"key", "operator", "value"}, ...]` (or its filters already parsed); problems go to `errors[field]`."""
    if raw in (None, "", [], ()):
        return ()
    if not isinstance(raw, list | tuple):
        errors[field] = "must be a list of {key, operator, value} objects"
        return ()
    if len(raw) > MAX_PROPERTY_FILTERS:
        errors[field] = f"at most {MAX_PROPERTY_FILTERS} property filters, got {len(raw)}"
        return ()
    parsed: list[PropertyFilter] = []
    for index, item in enumerate(raw):
        problem, result = _one(item)
        if problem:
            errors[field] = f"filter {index}: {problem}"
            return ()
        parsed.append(result)  # type: ignore[arg-type]
    return tuple(parsed)


def _one(item: object) -> tuple[str | None, PropertyFilter | None]:
    if isinstance(item, PropertyFilter):
        return None, item
    if not isinstance(item, dict) or set(item) - {"key", "operator", "value", "type"}:
        return "must be an object with key, operator and value", None
    key, operator, value = item.get("key"), item.get("operator", "exact"), item.get("value")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        return f"key must be a text of 1 to {MAX_KEY_LENGTH} characters", None
    if operator not in OPERATORS:
        return f"operator must be one of {', '.join(OPERATORS)}, got {operator!r}", None
    if operator in VALUELESS:
        if value is not None:
            return f"{operator} takes no value", None
    elif operator in ("gt", "lt"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{operator} compares with a number, got {value!r}", None
        value = float(value)
    elif isinstance(value, bool):
        value = "true" if value else "false"  # as JSON writes it, which is what the stored text holds
    elif isinstance(value, int | float):
        value = _number_text(value)
    elif not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
        return f"{operator} compares with a text or number of at most {MAX_VALUE_LENGTH} characters", None
    return None, PropertyFilter(key, operator, value)


def _number_text(value: float) -> str:
    # 3 and 3.0 are the same JSON number; the stored raw text of an integer has no ".0".
    return str(int(value)) if float(value).is_integer() else repr(float(value))
