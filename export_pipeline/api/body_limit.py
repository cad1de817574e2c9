"""Request bodies larger than EXPORT_API_MAX_BODY_BYTES answer 413 in the API's error shape.

A declared Content-Length over the limit is refused before the body is read; a chunked (or lying) body is
counted while the route reads it, and refused as soon as it passes the limit, so no large body is ever held
in memory. Starlette's own limiter answers plain text on some paths, hence this middleware.
"""

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from export_pipeline.api.errors import error_body

PAYLOAD_TOO_LARGE = "payload_too_large"


class BodyTooLarge(HTTPException):
    """FastAPI's HTTPException, which its body parsing re-raises (others become a 400) to the error handler."""

    def __init__(self, limit: int):
        super().__init__(413, detail=too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    return f"The request body is larger than the {limit:,}-byte limit (EXPORT_API_MAX_BODY_BYTES)."


def too_large_response(limit: int) -> JSONResponse:
    # Closing the connection: the unread rest of the body must not be parsed as the next request.
    return JSONResponse(error_body(PAYLOAD_TOO_LARGE, too_large_message(limit), {"limit_bytes": limit}),
                        status_code=413, headers={"Connection": "close"})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await too_large_response(self.max_bytes)(scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            await too_large_response(self.max_bytes)(scope, receive, send)
