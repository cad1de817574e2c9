"""Usage of the API: every `/api/` request is recorded for Service Ping, and administrators read the latest
payload at `GET /api/v1/usage/service_ping`."""

import logging

from fastapi import APIRouter, Request

from export_pipeline.api.dependencies import CurrentCaller, Deps
from export_pipeline.api.errors import ApiError
from export_pipeline.clock import now_utc
from export_pipeline.errors import NotFound
from export_pipeline.usage.service_ping import latest_payload, record_api_request

log = logging.getLogger(__name__)
router = APIRouter()


# The payload's keys are Service Ping's own (usage/service_ping.py): no response model here.
@router.get("/api/v1/usage/service_ping")
def get_service_ping(who: CurrentCaller, deps: Deps) -> dict:
    if who.user not in deps.settings.admin_users:
        raise ApiError(403, "forbidden", "Only instance administrators (EXPORT_ADMIN_USERS) may read Service Ping.")
    payload = latest_payload(deps.engine)
    if payload is None:
        raise NotFound("No Service Ping has been computed yet; it runs weekly (materialize `service_ping` in Dagster).")
    return payload


async def record_usage(request: Request, call_next):
    """HTTP middleware: record each API request by route template, status and user."""
    try:
        response = await call_next(request)
    except Exception:
        _save(request, 500)  # the outermost handler turns it into our 500 response
        raise
    _save(request, response.status_code)
    return response


def _save(request: Request, status: int) -> None:
    route = request.scope.get("route")
    if route is None or not request.url.path.startswith("/api/"):
        return
    try:
        engine = request.app.state.deps.engine  # AppDeps, set by create_app
        record_api_request(engine, endpoint=f"{request.method} {route.path}", status=status,
                           user=getattr(request.state, "user", None), at=now_utc())
    except Exception:  # usage must never break a request
        log.exception("recording API usage failed")
