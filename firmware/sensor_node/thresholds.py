"""Thresholds with hysteresis: one ``start`` when a reading passes its level, one ``end`` back.

A reading that stays above the level, or wobbles between clear and level, raises nothing new.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from firmware.sensor_node.config import ThresholdRule

START = "start"
END = "end"


class Episode:
    """An open threshold episode: the ``start`` event's id and time, and the worst value seen."""

    def __init__(
        self, rule_id: str, reading: str, start_id: str, started_ms: int, peak: float
    ) -> None:
        self.rule_id = rule_id
        self.reading = reading
        self.start_id = start_id
        self.started_ms = started_ms
        self.peak = peak

    def to_json(self) -> "dict[str, object]":
        return {
            "rule": self.rule_id,
            "reading": self.reading,
            "id": self.start_id,
            "t": self.started_ms,
            "peak": self.peak,
        }

    @classmethod
    def from_json(cls, data: "dict[str, object]") -> "Episode":
        rule_id, reading, start_id = data["rule"], data["reading"], data["id"]
        started, peak = data["t"], data["peak"]
        if not isinstance(rule_id, str) or not isinstance(reading, str):
            raise TypeError("episode: rule and reading must be strings")
        if not isinstance(start_id, str):
            raise TypeError("episode: id must be a string")
        if not isinstance(started, int) or not isinstance(peak, (int, float)):
            raise TypeError("episode: t and peak must be numbers")
        return cls(rule_id, reading, start_id, started, float(peak))


class Crossing:
    """A phase change of one rule, handed to ``messages.threshold_event``."""

    def __init__(
        self,
        phase: str,
        rule: "ThresholdRule",
        value: float,
        at_ms: int,
        episode: Episode,
        *,
        event_id: str,
        reason: str = "",
    ) -> None:
        self.phase = phase
        self.rule = rule
        self.value = value
        self.at_ms = at_ms
        self.episode = episode
        self.event_id = event_id
        self.reason = reason


def _passed(rule: "ThresholdRule", value: float) -> bool:
    return value >= rule.level if rule.direction == "above" else value <= rule.level


def _cleared(rule: "ThresholdRule", value: float) -> bool:
    return value <= rule.clear if rule.direction == "above" else value >= rule.clear


def _worse(rule: "ThresholdRule", a: float, b: float) -> float:
    return max(a, b) if rule.direction == "above" else min(a, b)


class ThresholdEngine:
    def __init__(self, episodes: "dict[str, Episode] | None" = None) -> None:
        self.episodes = episodes or {}

    def evaluate(
        self,
        rules: "list[ThresholdRule]",
        readings: "dict[str, float]",
        now_ms: int,
        new_id: "Callable[[int], str]",
    ) -> "list[Crossing]":
        """Crossings caused by *readings*; ``new_id(now_ms)`` makes event ids."""
        crossings = []
        known = {rule.id for rule in rules}
        for rule_id in list(self.episodes):
            if rule_id not in known:
                # The rule was removed by a new config: close its episode so no incident dangles.
                episode = self.episodes.pop(rule_id)
                ghost = _removed_rule(episode)
                end_id = new_id(now_ms)
                crossings.append(
                    Crossing(
                        END,
                        ghost,
                        episode.peak,
                        now_ms,
                        episode,
                        event_id=end_id,
                        reason="rule_removed",
                    )
                )
        for rule in rules:
            value = readings.get(rule.reading)
            if value is None:
                continue
            current = self.episodes.get(rule.id)
            if current is None:
                if _passed(rule, value):
                    start_id = new_id(now_ms)
                    episode = Episode(rule.id, rule.reading, start_id, now_ms, value)
                    self.episodes[rule.id] = episode
                    crossings.append(
                        Crossing(START, rule, value, now_ms, episode, event_id=start_id)
                    )
                continue
            current.peak = _worse(rule, current.peak, value)
            if _cleared(rule, value):
                del self.episodes[rule.id]
                end_id = new_id(now_ms)
                crossings.append(Crossing(END, rule, value, now_ms, current, event_id=end_id))
        return crossings

    def to_json(self) -> "list[dict[str, object]]":
        return [episode.to_json() for episode in self.episodes.values()]

    @classmethod
    def from_json(cls, data: "list[dict[str, object]]") -> "ThresholdEngine":
        episodes = [Episode.from_json(item) for item in data]
        return cls({episode.rule_id: episode for episode in episodes})


def _removed_rule(episode: Episode) -> "ThresholdRule":
    from firmware.sensor_node.config import ThresholdRule

    return ThresholdRule(episode.rule_id, episode.reading, episode.peak, episode.peak)
