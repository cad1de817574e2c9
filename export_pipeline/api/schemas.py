"""Answer models derived from a store's record, so the record stays the one home of its fields.

A record's `to_json` gives its fields in order with times as ISO 8601 strings; the model says the same, and
forbids other keys, so a key added to `to_json` alone fails the tests instead of vanishing from the answer.
"""

import dataclasses
from datetime import datetime
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model


def _as_json(hint: Any) -> Any:
    if hint is datetime:
        return str
    if hint == datetime | None:
        return str | None
    return hint


def record_model(record: type, name: str, **types: Any) -> type[BaseModel]:
    """`record`'s fields then any of `types` it lacks (`name: type`, also overriding a field's type)."""
    hints = get_type_hints(record)
    fields: dict[str, Any] = {f.name: (_as_json(hints[f.name]), ...) for f in dataclasses.fields(record)}
    fields.update({key: (hint, ...) for key, hint in types.items()})
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def page_model(item: type[BaseModel], name: str, **more: Any) -> type[BaseModel]:
    """`{"data": [item, …]}` plus `more` keys."""
    return create_model(name, data=(list[item], ...), **{key: (hint, ...) for key, hint in more.items()})  # type: ignore[valid-type]
