"""HTTP routes of the connectors: inbound webhooks per source, and source health."""

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response

from cloud.api.deps import visible_devices
from cloud.connectors.config import SOURCE_ID_PATTERN, WebhookSource
from cloud.connectors.health import SourceHealthOut
from cloud.connectors.hub import ConnectorHub, InboundGuard
from cloud.connectors.intake import Intake, IntakeResult
from cloud.connectors.problems import problem
from cloud.connectors.records import records_of
from cloud.connectors.signing import SignatureError, verify
from cloud.ops.roles import Principal
from cloud.store.base import StoreUnavailableError

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024

SourceId = Annotated[str, Path(pattern=SOURCE_ID_PATTERN, description="Configured source id.")]


def too_large(request: Request) -> bool:
    """Refuse by the announced length before reading a body that is too big."""
    length = request.headers.get("content-length", "")
    return length.isdigit() and int(length) > MAX_BODY_BYTES


def rate_limited(guard: InboundGuard, source_id: str) -> Response | None:
    wait = guard.bucket.take()
    if wait <= 0:
        return None
    logger.warning("source %s: rate limit hit", source_id)
    return problem(
        429,
        "Too many requests",
        f"source {source_id} is limited; retry in {wait:.1f} s",
        headers={"Retry-After": str(max(1, round(wait)))},
    )


def check_signature(
    source: WebhookSource, guard: InboundGuard, request: Request, body: bytes
) -> Response | None:
    """401 for a missing/bad/stale signature, 409 for a replay; None when it may pass."""
    secret = guard.secret.get_secret_value().encode()
    now = time.time()
    if source.auth == "token":
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not sent or not hmac.compare_digest(sent.encode(), secret):
            return problem(401, "Unauthorized", "missing or wrong token", field="Authorization")
        return None
    signature = request.headers.get(source.signature_header)
    try:
        verify(
            secret,
            body,
            signature=signature,
            timestamp=request.headers.get(source.timestamp_header),
            window_s=source.replay_window_s,
            now=now,
            signature_header=source.signature_header,
            timestamp_header=source.timestamp_header,
        )
    except SignatureError as exc:
        logger.warning("source %s: refused webhook: %s", source.id, exc)
        return problem(401, "Unauthorized", exc.reason, field=exc.field)
    if signature is not None and not guard.replays.first_time(signature, now):
        logger.warning("source %s: replayed webhook refused", source.id)
        return problem(409, "Replay", "this signed request was already received", field="signature")
    return None


async def take_records(
    hub: ConnectorHub, source_id: str, body: bytes, path: str | None
) -> Response:
    intake = hub.intakes[source_id]
    try:
        records = records_of(json.loads(body), path)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        intake.health.error(f"bad body: {exc}")
        return problem(400, "Bad request", f"body is not a JSON record list: {exc}", field="body")
    return await ingest_response(intake, records, status=202)


async def ingest_response(intake: Intake, records: list[Any], *, status: int) -> Response:
    """Take *records* in: *status* with the result, 422 when none maps, 503 when the store is down.

    On 503 (with ``Retry-After``) nothing was stored; the sender should retry the same request.
    """
    try:
        result: IntakeResult = await intake.ingest(records)
    except StoreUnavailableError as exc:
        logger.warning("source %s: store unavailable: %s", intake.source.id, exc)
        return problem(
            503, "Store unavailable", "records were not stored; retry", headers={"Retry-After": "5"}
        )
    if records and not result.accepted and not result.duplicates:
        first = result.rejected[0]
        return problem(422, "No record could be mapped", first.reason, field=first.field)
    return JSONResponse(result.model_dump(), status_code=status)


def build_connector_router(
    hub: ConnectorHub, *, read_dependencies: Sequence[Any] = ()
) -> APIRouter:
    """Webhook intake (authenticated by each source's signature/token) and source health.

    *read_dependencies* (e.g. the API's role check) guard the health route.
    """
    router = APIRouter(prefix="/api/v1/connectors", tags=["connectors"])

    @router.post(
        "/{source_id}/webhook",
        status_code=202,
        response_model=IntakeResult,
        summary="Receive records from a partner system (signed webhook)",
        responses={400: {}, 401: {}, 404: {}, 409: {}, 413: {}, 422: {}, 429: {}, 503: {}},
    )
    async def receive_webhook(source_id: SourceId, request: Request) -> Response:
        source = hub.source(source_id)
        guard = hub.guards.get(source_id)
        if not isinstance(source, WebhookSource) or guard is None:
            return problem(404, "Not found", f"no webhook source {source_id}", field="source_id")
        limited = rate_limited(guard, source_id)
        if limited is not None:
            return limited
        if too_large(request):
            return problem(413, "Too large", f"body over {MAX_BODY_BYTES} bytes", field="body")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return problem(413, "Too large", f"body over {MAX_BODY_BYTES} bytes", field="body")
        refused = check_signature(source, guard, request, body)
        if refused is not None:
            hub.intakes[source_id].health.error(f"refused request: {refused.status_code}")
            return refused
        response = await take_records(hub, source_id, body, source.records_path)
        signature = request.headers.get(source.signature_header)
        if response.status_code == 503 and signature:  # noqa: PLR2004 - not taken in: may resend
            guard.replays.forget(signature)
        return response

    @router.get(
        "/sources",
        summary="Health of every configured source: last success, errors, lag",
        dependencies=[Depends(d) for d in read_dependencies],
    )
    async def list_sources(request: Request) -> list[SourceHealthOut]:
        """A department-scoped key sees the sources whose virtual device it may see."""
        health = hub.health()
        principal = getattr(request.state, "principal", None)
        ctx = getattr(request.app.state, "ctx", None)
        if not isinstance(principal, Principal) or ctx is None:
            return health
        allowed = await asyncio.to_thread(visible_devices, ctx, principal)
        return [h for h in health if allowed is None or h.device_id in allowed]

    return router
