"""REST polling of a partner API: interval, pagination, since-cursor, exponential backoff."""

import asyncio
import json
import logging
import os
from typing import Any
from urllib.parse import urljoin

import httpx

from cloud.connectors.config import RestPollSource
from cloud.connectors.intake import Intake
from cloud.connectors.mapping import lookup
from cloud.connectors.records import records_of

logger = logging.getLogger(__name__)


class PollError(RuntimeError):
    pass


def _cursor_key(value: Any) -> tuple[int, float, str]:
    """Orders numbers numerically and everything else (ISO times, ids) as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


class RestPoller:
    def __init__(
        self, source: RestPollSource, intake: Intake, client: httpx.AsyncClient | None = None
    ) -> None:
        self.source = source
        self.intake = intake
        self.client = client
        self.cursor: Any = self._load_cursor()

    @property
    def _state_file(self) -> Any:
        if self.source.state_dir is None:
            return None
        return self.source.state_dir / f"{self.source.id}.cursor.json"

    def _load_cursor(self) -> Any:
        path = self._state_file
        if path is None or not path.exists():
            return None
        return json.loads(path.read_text()).get("cursor")

    def _save_cursor(self) -> None:
        path = self._state_file
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cursor": self.cursor}))
        tmp.replace(path)

    def _headers(self) -> dict[str, str]:
        headers = dict(self.source.headers)
        for name, env in self.source.header_env.items():
            value = os.environ.get(env)
            if not value:
                raise PollError(f"header_env.{name}: environment variable {env} is not set")
            headers[name] = value
        return headers

    async def _get(self, client: httpx.AsyncClient, url: str, params: dict[str, str]) -> Any:
        try:
            # Merge, not replace: httpx drops the URL's own query when given params.
            target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
            response = await client.get(target, headers=self._headers())
        except httpx.HTTPError as exc:
            raise PollError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != httpx.codes.OK:
            raise PollError(f"GET {url}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise PollError(f"GET {url}: body is not JSON") from exc

    async def poll_once(self) -> int:
        """Fetch every page since the cursor and take the records in; returns how many."""
        try:
            return await self._poll()
        except PollError as exc:
            self.intake.health.error(str(exc))
            raise

    async def _poll(self) -> int:
        source = self.source
        params = dict(source.params)
        if source.since_param is not None and self.cursor is not None:
            params[source.since_param] = str(self.cursor)
        url: str | None = source.url
        page = source.pagination.first_page
        total = 0
        async with httpx.AsyncClient(timeout=source.timeout_s) as own:
            client = self.client or own
            for _ in range(source.pagination.max_pages):
                if url is None:
                    break
                if source.pagination.page_param is not None:
                    params[source.pagination.page_param] = str(page)
                body = await self._get(client, url, params)
                try:
                    records = records_of(body, source.records_path)
                except ValueError as exc:
                    raise PollError(str(exc)) from exc
                if not records:
                    break
                await self.intake.ingest(records)
                total += len(records)
                self._advance(records)
                url, page = self._next(body, url, page)
                if source.pagination.next_path is not None:
                    params = {}  # the next link carries its own query
        self.intake.health.success()
        return total

    def _advance(self, records: list[Any]) -> None:
        if self.source.cursor_path is None:
            return
        values = [lookup(r, self.source.cursor_path) for r in records if isinstance(r, dict)]
        values = [v for v in values if v is not None and isinstance(v, str | int | float)]
        if values:
            newest = max(values, key=_cursor_key)
            if self.cursor is None or _cursor_key(newest) > _cursor_key(self.cursor):
                self.cursor = newest
                self._save_cursor()

    def _next(self, body: Any, url: str, page: int) -> tuple[str | None, int]:
        pagination = self.source.pagination
        if pagination.next_path is not None:
            link = lookup(body, pagination.next_path)
            return (urljoin(url, link) if isinstance(link, str) and link else None), page
        if pagination.page_param is not None:
            return url, page + 1
        return None, page

    async def run(self) -> None:
        """Poll forever; after a failure wait ``backoff_initial_s`` doubling up to the maximum."""
        failures = 0
        while True:
            errors_before = self.intake.health.errors_total
            try:
                count = await self.poll_once()
            except Exception as exc:  # a poller must outlive any one failure
                failures += 1
                if self.intake.health.errors_total == errors_before:
                    self.intake.health.error(str(exc))
                delay = min(
                    self.source.backoff_initial_s * 2 ** (failures - 1), self.source.backoff_max_s
                )
                logger.warning(
                    "source %s: poll failed (%s); retry in %.1f s",
                    self.source.id,
                    exc,
                    delay,
                    exc_info=not isinstance(exc, PollError),
                )
            else:
                failures = 0
                delay = self.source.interval_s
                logger.debug("source %s: polled %d records", self.source.id, count)
            await asyncio.sleep(delay)
