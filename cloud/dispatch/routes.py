"""Dispatch status in the API: deliveries, dead letters, and retrying them."""

import asyncio
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from cloud.connectors.problems import problem
from cloud.dispatch.dispatcher import DeliveryOut, Dispatcher
from cloud.dispatch.tables import DeliveryStatus
from cloud.ops.roles import Principal

DeliveryId = Annotated[str, Path(min_length=1, max_length=36, description="Delivery id.")]


def build_dispatch_router(
    dispatcher: Dispatcher | Callable[[], Dispatcher],
    *,
    read_dependencies: Sequence[Any] = (),
    write_dependencies: Sequence[Any] = (),
) -> APIRouter:
    """Routes over *dispatcher* (or a function returning it, when it is made after the app)."""
    router = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"])

    def current() -> Dispatcher:
        return dispatcher if isinstance(dispatcher, Dispatcher) else dispatcher()

    def visible(request: Request, found: DeliveryOut | None) -> DeliveryOut | None:
        """*found* if the caller's departments include its incident's (else as if missing)."""
        principal = getattr(request.state, "principal", None)
        if found is None or not isinstance(principal, Principal):
            return found
        return found if principal.sees(found.department) else None

    @router.get(
        "/deliveries",
        summary="Deliveries to department systems; status=dead lists the dead letters",
        dependencies=[Depends(d) for d in read_dependencies],
    )
    async def list_deliveries(
        request: Request,
        status: Annotated[DeliveryStatus | None, Query()] = None,
        incident_id: Annotated[str | None, Query(max_length=36)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[DeliveryOut]:
        principal = getattr(request.state, "principal", None)
        departments = (
            principal.departments
            if isinstance(principal, Principal) and not principal.all_departments
            else None
        )
        return await asyncio.to_thread(
            current().list_deliveries, status, incident_id, limit, departments
        )

    @router.get(
        "/deliveries/{delivery_id}",
        summary="One delivery with its last error",
        response_model=DeliveryOut,
        responses={404: {}},
        dependencies=[Depends(d) for d in read_dependencies],
    )
    async def get_delivery(request: Request, delivery_id: DeliveryId) -> DeliveryOut | JSONResponse:
        found = visible(request, await asyncio.to_thread(current().get, delivery_id))
        if found is None:
            return problem(404, "Not found", f"no delivery {delivery_id}", field="delivery_id")
        return found

    @router.post(
        "/deliveries/{delivery_id}/retry",
        summary="Queue a dead delivery again with a fresh set of tries",
        response_model=DeliveryOut,
        responses={404: {}},
        dependencies=[Depends(d) for d in write_dependencies],
    )
    async def retry_delivery(
        request: Request, delivery_id: DeliveryId
    ) -> DeliveryOut | JSONResponse:
        if visible(request, await asyncio.to_thread(current().get, delivery_id)) is None:
            return problem(404, "Not found", f"no delivery {delivery_id}", field="delivery_id")
        found = await asyncio.to_thread(current().retry, delivery_id)
        if found is None:
            return problem(404, "Not found", f"no delivery {delivery_id}", field="delivery_id")
        return found

    return router
