"""Examples of what each operation takes and answers, shown by `/docs` and `/redoc` (api/api_docs.py).

Written by hand, one module per area; a route passes `openapi_extra=examples(...)`, and test_openapi.py checks
every example against its operation's own schemas, so an example cannot drift from what the API really takes or
answers.

FastAPI drops every null from the document it builds (`exclude_none`), those inside examples too, which would
leave examples without fields the answers have. So a null stands as `NULL` until the document is built, and
`restore_nulls` turns it back.
"""

from typing import Any

NULL = "\u0000null"


def examples(*, request: Any = None, response: Any = None, status: int = 200,
             request_type: str = "application/json", response_type: str = "application/json") -> dict[str, Any]:
    """A route's `openapi_extra`: an example of its request body and of its success answer (`status`), merged by
    FastAPI into the operation it generates, next to the schemas."""
    extra: dict[str, Any] = {}
    if request is not None:
        extra["requestBody"] = {"content": {request_type: {"example": _hold_nulls(request)}}}
    if response is not None:
        extra["responses"] = {str(status): {"content": {response_type: {"example": _hold_nulls(response)}}}}
    return extra


def restore_nulls(value: Any) -> Any:
    """`value` (the built document) with every `NULL` back to null; dicts and lists are changed in place."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = restore_nulls(item)
    elif isinstance(value, list):
        value[:] = [restore_nulls(item) for item in value]
    return None if value == NULL else value


def _hold_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _hold_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_hold_nulls(item) for item in value]
    return NULL if value is None else value


def html_page(title: str, body: str) -> str:
    """An example of a page the API answers with (shortened: the real ones carry styles and scripts)."""
    return f'<!doctype html>\n<html lang="en">\n<head><title>{title}</title>…</head>\n<body>{body}…</body>\n</html>\n'
