"""One catalogue of the console's words (``messages.json``: English and pt-PT).

The language is the ``cityops_lang`` cookie (the switch), else the browser's Accept-Language.
"""

import json
from functools import cache
from importlib import resources
from typing import Final

from fastapi import Request

from cloud.console.auth import LANG_COOKIE

DEFAULT_LANGUAGE: Final = "en"


@cache
def catalogue() -> dict[str, dict[str, str]]:
    text = resources.files("cloud.console").joinpath("messages.json").read_text("utf-8")
    data: dict[str, dict[str, str]] = json.loads(text)
    return data


def languages() -> list[str]:
    return list(catalogue())


def _match(tag: str) -> str | None:
    tag = tag.strip().lower()
    for language in catalogue():
        if tag == language.lower():
            return language
    primary = tag.split("-")[0]
    for language in catalogue():
        if language.lower().split("-")[0] == primary:
            return language  # pt, pt-BR -> pt-PT; en-GB -> en
    return None


def pick_language(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in catalogue():
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag.strip():
            ranked.append((-weight, i, tag))
    for _, _, tag in sorted(ranked):
        found = _match(tag)
        if found is not None:
            return found
    return DEFAULT_LANGUAGE


def messages(language: str) -> dict[str, str]:
    return catalogue()[language]
