"""Usage of the API: every `/api/` request is recorded for Service Ping, and administrators read the latest
payload at `GET /api/v1/usage/service_ping`."""

import logging

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from export_pipeline.api.dependencies import CurrentCaller, Deps
from export_pipeline.api.errors import ApiError
from export_pipeline.api.examples import examples
from export_pipeline.api.examples.exports import SERVICE_PING
from export_pipeline.api.responses import error_responses
from export_pipeline.clock import now_utc
from export_pipeline.errors import NotFound
from export_pipeline.usage.service_ping import latest_payload, record_api_request

log = logging.getLogger(__name__)
router = APIRouter()


class ServicePing(BaseModel):
    """The metrics nest by their key_path (usage/metrics/*.yml), so only the envelope is fixed."""

    model_config = ConfigDict(extra="allow")

    recorded_at: str
    version: str


@router.get("/api/v1/usage/service_ping", tags=["usage"], response_model=ServicePing,
            responses=error_responses(401, 403, 404, e403="Not an instance administrator (EXPORT_ADMIN_USERS)",
                                      e404="No Service Ping computed yet"),
            summary="Read the latest Service Ping", openapi_extra=examples(response=SERVICE_PING))
def get_service_ping(who: CurrentCaller, deps: Deps) -> dict:
    """The usage payload computed last (weekly, by Dagster's `service_ping` asset): metrics nested by their key
    path (usage/metrics/*.yml). Instance administrators only (EXPORT_ADMIN_USERS)."""
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
