"""Live stream of new events and incident changes: WebSocket and Server-Sent Events."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from cloud.api.deps import Ctx, Require, principal_of
from cloud.api.problems import ApiError, Problem
from cloud.ops.live import LiveFilter, LiveType
from cloud.ops.roles import Permission, Principal
from shared.events import EventKind, Severity

router = APIRouter(prefix="/api/v1/live", tags=["live"])
_HEARTBEAT_S = 15.0
_CLOSE_UNAUTHORIZED = 4401
_CLOSE_FORBIDDEN = 4403


def live_filter(
    types: Annotated[list[LiveType], Query(alias="type")] = [],  # noqa: B006 - FastAPI copies
    kinds: Annotated[list[EventKind], Query(alias="kind")] = [],  # noqa: B006
    device_ids: Annotated[
        list[Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]],
        Query(alias="device_id"),
    ] = [],  # noqa: B006
    departments: Annotated[
        list[Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]],
        Query(alias="department"),
    ] = [],  # noqa: B006
    min_severity: Severity | None = None,
) -> LiveFilter:
    return LiveFilter(
        types=types,
        kinds=kinds,
        device_ids=device_ids,
        departments=departments,
        min_severity=min_severity,
    )


Filter = Annotated[LiveFilter, Depends(live_filter)]


@router.get(
    "/sse",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: event|incident` + `data: <LiveMessage JSON>`.",
        },
        401: {"model": Problem},
        403: {"model": Problem},
    },
)
async def sse(
    *,
    ctx: Ctx,
    request: Request,
    principal: Annotated[Principal, Depends(Require(Permission.LIVE))],
    live: Filter,
) -> StreamingResponse:
    """Server-Sent Events; filter with ``type``, ``kind``, ``device_id``, ``department``."""
    sub = ctx.live.subscribe(principal, live)

    async def stream() -> AsyncIterator[str]:
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    message = await asyncio.wait_for(sub.queue.get(), _HEARTBEAT_S)
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                yield f"event: {message.type.value}\ndata: {message.model_dump_json()}\n\n"
        finally:
            ctx.live.unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/ws")
async def websocket(
    websocket: WebSocket,
    live: Filter,
    token: Annotated[str | None, Query(max_length=200, description="For browsers.")] = None,
) -> None:
    """WebSocket: one JSON ``LiveMessage`` per text frame. Auth: ``Authorization`` or ``token``.

    Closes with 4401 without valid credentials and 4403 without the ``live`` permission.
    """
    ctx = websocket.app.state.ctx
    header = websocket.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    key = credential if scheme.lower() == "bearer" and credential else token
    # Accept first, then close with an application code: browsers do not expose the HTTP
    # status of a refused handshake, but they do expose close codes and reasons.
    await websocket.accept()
    try:
        principal = principal_of(ctx, key)
    except ApiError:
        await websocket.close(code=_CLOSE_UNAUTHORIZED, reason="invalid or missing API key")
        return
    if not principal.can(Permission.LIVE):
        await websocket.close(code=_CLOSE_FORBIDDEN, reason="the role cannot read the stream")
        return
    sub = ctx.live.subscribe(principal, live)
    receiver = asyncio.create_task(_drain(websocket))
    try:
        while not receiver.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await websocket.send_text(getter.result().model_dump_json())
    except WebSocketDisconnect:
        pass
    finally:
        ctx.live.unsubscribe(sub)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await receiver


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client frames so a close is noticed."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()
