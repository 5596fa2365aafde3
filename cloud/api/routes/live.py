"""Live stream of new events and incident changes: WebSocket and Server-Sent Events.

Keys never travel in a URL: a WebSocket authenticates with the ``Authorization`` header, the
``cityops.bearer.<key>`` subprotocol, or a single-use ticket from ``POST /live/tickets``.
Every open stream re-checks its principal every ``RECHECK_S``: a revoked or expired key closes
it, a narrowed one narrows what it gets.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from cloud.api.context import ApiContext
from cloud.api.deps import Ctx, Require, authenticate_token, refuse, revalidate
from cloud.api.problems import ApiError, Problem
from cloud.ops.keys import TICKET_TTL_S, issue_ticket, redeem_ticket
from cloud.ops.live import LiveFilter, LiveType, Subscription
from cloud.ops.roles import Permission, Principal
from shared.events import EventKind, Severity

router = APIRouter(prefix="/api/v1/live", tags=["live"])
_HEARTBEAT_S = 15.0
RECHECK_S = 2.0
"""How often an open stream re-checks its credential (a revocation closes it within this plus
one database look-up: well within 5 s)."""
_CLOSE_UNAUTHORIZED = 4401
_CLOSE_FORBIDDEN = 4403
SUBPROTOCOL = "cityops.v1"
_BEARER_PROTOCOL = "cityops.bearer."
_TICKET_PROTOCOL = "cityops.ticket."


class Ticket(BaseModel):
    ticket: str
    expires_in_s: float


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
        watcher = asyncio.create_task(watch(ctx, sub))
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                getter = asyncio.create_task(sub.queue.get())
                done, _ = await asyncio.wait(
                    {getter, watcher}, timeout=_HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                )
                if watcher in done:
                    getter.cancel()
                    yield f"event: closed\ndata: {watcher.result()[1]}\n\n"
                    break
                if getter not in done:
                    getter.cancel()
                    yield ": heartbeat\n\n"
                    continue
                message = getter.result()
                yield f"event: {message.type.value}\ndata: {message.model_dump_json()}\n\n"
        finally:
            ctx.live.unsubscribe(sub)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/tickets",
    status_code=201,
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
async def create_ticket(
    *, ctx: Ctx, principal: Annotated[Principal, Depends(Require(Permission.LIVE))]
) -> Ticket:
    """A single-use ticket (valid 30 s) that opens one WebSocket as the calling key.

    For browsers, which cannot set headers on a WebSocket: pass it as the subprotocol
    ``cityops.ticket.<ticket>`` (with ``cityops.v1``) or as ``?ticket=``; never the key itself.
    """
    ticket = await asyncio.to_thread(_issue, ctx, principal.key_id)
    return Ticket(ticket=ticket, expires_in_s=TICKET_TTL_S)


def _issue(ctx: ApiContext, key_id: str) -> str:
    with ctx.sessions() as session:
        return issue_ticket(session, key_id)


def _redeem(ctx: ApiContext, ticket: str) -> Principal | None:
    with ctx.sessions() as session:
        return redeem_ticket(session, ticket)


async def websocket_principal(
    ctx: ApiContext, websocket: WebSocket, ticket: str | None
) -> Principal:
    """From the ``Authorization`` header, a ``cityops.*`` subprotocol or a ticket (401 else)."""
    address = websocket.client.host if websocket.client else ""
    scheme, _, credential = websocket.headers.get("authorization", "").partition(" ")
    offered = websocket.scope.get("subprotocols", [])
    for protocol in offered:
        if protocol.startswith(_BEARER_PROTOCOL):
            credential, scheme = protocol.removeprefix(_BEARER_PROTOCOL), "bearer"
        elif protocol.startswith(_TICKET_PROTOCOL):
            ticket = protocol.removeprefix(_TICKET_PROTOCOL)
    if scheme.lower() == "bearer" and credential:
        return await authenticate_token(ctx, credential, address)
    if ticket:
        principal = await asyncio.to_thread(_redeem, ctx, ticket)
        if principal is None:
            raise await refuse(ctx, address, "ticket", "unknown, used or expired ticket")
        return principal
    raise await refuse(
        ctx, address, "missing", "send the key in a header or subprotocol, or use a ticket"
    )


async def watch(ctx: ApiContext, sub: Subscription) -> tuple[int, str]:
    """Re-check the stream's principal until it is revoked, expired or loses ``live``.

    Narrowed departments apply to the next message. Returns the close code and reason.
    """
    while True:
        await asyncio.sleep(RECHECK_S)
        now = await asyncio.to_thread(revalidate, ctx, sub.principal)
        if now is None:
            ctx.metrics.stream_closes.labels("revoked").inc()
            return _CLOSE_UNAUTHORIZED, "the credential was revoked or has expired"
        if not now.can(Permission.LIVE):
            ctx.metrics.stream_closes.labels("forbidden").inc()
            return _CLOSE_FORBIDDEN, "the role can no longer read the stream"
        sub.principal = now


@router.websocket("/ws")
async def websocket(
    websocket: WebSocket,
    live: Filter,
    ticket: Annotated[
        str | None, Query(max_length=200, description="A ticket from POST /live/tickets.")
    ] = None,
) -> None:
    """WebSocket: one JSON ``LiveMessage`` per text frame.

    Auth: ``Authorization: Bearer``, subprotocol ``cityops.bearer.<key>`` or
    ``cityops.ticket.<ticket>`` (offer ``cityops.v1`` too), or ``?ticket=``. Closes with 4401
    without valid credentials (or once the key is revoked or expires) and 4403 without the
    ``live`` permission.
    """
    ctx: ApiContext = websocket.app.state.ctx
    offered = websocket.scope.get("subprotocols", [])
    # Accept first, then close with an application code: browsers do not expose the HTTP
    # status of a refused handshake, but they do expose close codes and reasons.
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    try:
        principal = await websocket_principal(ctx, websocket, ticket)
    except ApiError as exc:
        await websocket.close(code=_CLOSE_UNAUTHORIZED, reason=exc.detail)
        return
    if not principal.can(Permission.LIVE):
        await websocket.close(code=_CLOSE_FORBIDDEN, reason="the role cannot read the stream")
        return
    sub = ctx.live.subscribe(principal, live)
    receiver = asyncio.create_task(_drain(websocket))
    watcher = asyncio.create_task(watch(ctx, sub))
    try:
        while not receiver.done():
            getter = asyncio.create_task(sub.queue.get())
            done, _ = await asyncio.wait(
                {getter, receiver, watcher}, return_when=asyncio.FIRST_COMPLETED
            )
            if watcher in done:
                getter.cancel()
                code, reason = watcher.result()
                await websocket.close(code=code, reason=reason)
                break
            if getter not in done:
                getter.cancel()
                break
            await websocket.send_text(getter.result().model_dump_json())
    except WebSocketDisconnect:
        pass
    finally:
        ctx.live.unsubscribe(sub)
        for task in (receiver, watcher):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await task


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) client frames so a close is noticed."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()
