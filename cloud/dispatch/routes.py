"""Dispatch status in the API: deliveries, dead letters, and retrying them."""

import asyncio
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from cloud.connectors.problems import problem
from cloud.dispatch.dispatcher import DeliveryOut, Dispatcher
from cloud.dispatch.tables import DeliveryStatus

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

    @router.get(
        "/deliveries",
        summary="Deliveries to department systems; status=dead lists the dead letters",
        dependencies=[Depends(d) for d in read_dependencies],
    )
    async def deliveries(
        status: Annotated[DeliveryStatus | None, Query()] = None,
        incident_id: Annotated[str | None, Query(max_length=36)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[DeliveryOut]:
        return await asyncio.to_thread(current().list_deliveries, status, incident_id, limit)

    @router.get(
        "/deliveries/{delivery_id}",
        summary="One delivery with its last error",
        response_model=DeliveryOut,
        responses={404: {}},
        dependencies=[Depends(d) for d in read_dependencies],
    )
    async def delivery(delivery_id: DeliveryId) -> DeliveryOut | JSONResponse:
        found = await asyncio.to_thread(current().get, delivery_id)
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
    async def retry(delivery_id: DeliveryId) -> DeliveryOut | JSONResponse:
        found = await asyncio.to_thread(current().retry, delivery_id)
        if found is None:
            return problem(404, "Not found", f"no delivery {delivery_id}", field="delivery_id")
        return found

    return router
