"""Hooks called by the ingestor with events it has just stored (duplicates already removed)."""

from collections.abc import Awaitable, Callable, Sequence

from shared.events import Event

EventHook = Callable[[Sequence[Event]], Awaitable[None]]
"""``await hook(events)`` after a batch is durably stored; used to open incidents, feed the live
stream and dispatch to other systems. A failing hook is logged and does not lose the events."""
