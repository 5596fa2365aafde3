"""File drop: CSV or JSON Lines files exported into a directory by another system.

Each file is read whole, its records taken in, and the file moved to ``done/`` (or ``failed/``
when it cannot be read or no record maps), so a restart never reads a file twice.
"""

import asyncio
import csv
import json
import logging
from pathlib import Path
from typing import Any

from cloud.connectors.config import FileDropSource
from cloud.connectors.intake import Intake

logger = logging.getLogger(__name__)


def read_records(path: Path, delimiter: str = ",") -> list[Any]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [dict(row) for row in csv.DictReader(handle, delimiter=delimiter)]
    records: list[Any] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"line {number}: not JSON: {exc}") from exc
    return records


class FileDrop:
    def __init__(self, source: FileDropSource, intake: Intake) -> None:
        self.source = source
        self.intake = intake

    def pending(self) -> list[Path]:
        found: set[Path] = set()
        for pattern in self.source.patterns:
            found.update(p for p in self.source.directory.glob(pattern) if p.is_file())
        return sorted(found)

    def _move(self, path: Path, folder: str) -> None:
        target = self.source.directory / folder
        target.mkdir(exist_ok=True)
        path.replace(target / path.name)

    async def scan_once(self) -> int:
        """Take in every waiting file; returns the number of files handled."""
        handled = 0
        for path in self.pending():
            try:
                records = await asyncio.to_thread(read_records, path, self.source.csv_delimiter)
            except (OSError, ValueError, csv.Error) as exc:
                self.intake.health.error(f"{path.name}: {exc}")
                logger.warning("source %s: cannot read %s: %s", self.source.id, path.name, exc)
                self._move(path, "failed")
                handled += 1
                continue
            result = await self.intake.ingest(records)  # a store failure leaves the file in place
            ok = not records or result.accepted or result.duplicates
            self._move(path, "done" if ok else "failed")
            handled += 1
            logger.info(
                "source %s: %s: %d records, %d accepted, %d rejected",
                self.source.id,
                path.name,
                len(records),
                result.accepted,
                len(result.rejected),
            )
        return handled

    async def run(self) -> None:
        self.source.directory.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                await self.scan_once()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive a failing store
                self.intake.health.error(str(exc))
                logger.warning("source %s: scan failed: %s", self.source.id, exc)
            await asyncio.sleep(self.source.poll_s)
