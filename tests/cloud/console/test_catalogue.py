"""One catalogue for English and pt-PT: every word the pages use exists in both."""

import re
from importlib import resources
from typing import get_args

import pytest
from starlette.requests import Request

from cloud.api.schemas import Health
from cloud.console.i18n import catalogue, pick_language
from cloud.ops.models import IncidentStatus
from cloud.ops.roles import Role
from shared.events import EventKind, Phase, Severity

CONSOLE = resources.files("cloud.console")


def used_keys() -> set[str]:
    keys: set[str] = set()
    for page in (CONSOLE / "templates").iterdir():
        keys |= set(re.findall(r"t\['([a-z_.-]+)'\]", page.read_text()))
    for script in (CONSOLE / "static").iterdir():
        if script.name.endswith(".js"):
            keys |= set(re.findall(r'\bt\("([a-z_.-]+)"', script.read_text()))
    return keys


def test_both_languages_have_the_same_words() -> None:
    english, portuguese = catalogue()["en"], catalogue()["pt-PT"]
    assert set(english) == set(portuguese)
    same = [k for k in english if english[k] == portuguese[k] and not k.startswith("lang.")]
    assert len(same) < 10, f"untranslated? {same}"  # SLA, API, FPS, ok ... are the same words
    for key, text in english.items():
        assert set(re.findall(r"\{\w+\}", text)) == set(re.findall(r"\{\w+\}", portuguese[key]))


def test_every_word_used_and_every_enum_value_is_in_the_catalogue() -> None:
    english = catalogue()["en"]
    needed = used_keys()
    assert len(needed) > 50
    needed |= {f"kind.{k.value}" for k in EventKind}
    needed |= {f"severity.{s.value}" for s in Severity}
    needed |= {f"status.{s.value}" for s in IncidentStatus}
    needed |= {f"phase.{p.value}" for p in Phase}
    needed |= {f"role.{r.value}" for r in Role}
    needed |= {f"health.{h}" for h in get_args(Health)}
    needed |= {f"action.{a}" for a in ("acknowledge", "dispatch", "resolve", "false-alarm")}
    assert needed - set(english) == set()


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "method": "GET", "path": "/"})


@pytest.mark.parametrize(
    ("headers", "language"),
    [
        ({}, "en"),
        ({"Accept-Language": "pt-PT,pt;q=0.9,en;q=0.8"}, "pt-PT"),
        ({"Accept-Language": "pt-BR"}, "pt-PT"),
        ({"Accept-Language": "fr-FR,en-GB;q=0.5,pt;q=0.7"}, "pt-PT"),
        ({"Accept-Language": "de"}, "en"),
        ({"Accept-Language": "pt", "Cookie": "cityops_lang=en"}, "en"),
        ({"Cookie": "cityops_lang=xx"}, "en"),
    ],
)
def test_language_from_switch_then_browser(headers: dict[str, str], language: str) -> None:
    assert pick_language(_request(headers)) == language
