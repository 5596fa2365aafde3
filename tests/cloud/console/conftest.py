"""Fixtures of the console tests: a served API with users, and a real headless Chromium."""

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser as PwBrowser
from playwright.async_api import BrowserContext, Page, Route, async_playwright

from cloud.api.app import create_app
from cloud.ops.users import create_user
from tests.cloud.api.conftest import CIVIL, POLICE, Served, add_keys, make_settings, serve, stop
from tests.conftest import Broker, need

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # A wall screen plays the alert without a click first (kiosk setting, docs/console.md).
    "--autoplay-policy=no-user-gesture-required",
]
PASSWORD = "correct horse battery"
USERS = {
    "ana": ("operator", [CIVIL], "Ana Silva"),
    "rui": ("operator", [POLICE], "Rui Costa"),
    "vera": ("viewer", [CIVIL], "Vera Lopes"),
    "sofia": ("supervisor", ["*"], "Sofia Reis"),
    "tomas": ("technician", [CIVIL], "Tomás Faria"),
}


def add_users(app: FastAPI) -> None:
    with app.state.sessions() as session:
        for username, (role, departments, name) in USERS.items():
            create_user(session, username, PASSWORD, role, departments, display_name=name)


async def login_http(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, landing: str = "/"
) -> None:
    """Sign in like the login form does (CSRF field from the page, then POST)."""
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == landing


@pytest.fixture
def chromium_path() -> str:
    need(shutil.which("chromium") is not None or Path(CHROMIUM).exists(), "chromium (apt)")
    need(
        __import__("importlib").util.find_spec("playwright") is not None,
        "playwright (pip, dev group)",
    )
    return CHROMIUM


@pytest.fixture
async def console(
    tmp_path: Path, mosquitto: Broker, request: pytest.FixtureRequest
) -> AsyncIterator[Served]:
    """The API + ingest on the real broker, with API keys and console users."""
    name = "".join(c for c in request.node.name if c.isalnum())[-40:]
    app = create_app(make_settings(tmp_path, broker=mosquitto, name=name), ingest=True)
    app.state.keys = add_keys(app)
    await asyncio.to_thread(add_users, app)
    running = await serve(app)
    async with asyncio.timeout(10):
        await app.state.ingestor.connected.wait()
        await app.state.ctx.mqtt.connected.wait()
    yield running
    await stop(running)


EVIL = "http://evil.example"
"""A cross-site page, served by the route handler itself (nothing leaves the machine)."""


@dataclass
class Offline:
    """Requests to anything but the console's server: refused, and kept here for the test."""

    origin: str
    external: list[str] = field(default_factory=list)
    evil_pages: dict[str, str] = field(default_factory=dict)

    async def route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith((self.origin + "/", self.origin.replace("http", "ws", 1) + "/")):
            await route.continue_()
        elif url in self.evil_pages:
            await route.fulfill(status=200, content_type="text/html", body=self.evil_pages[url])
        else:
            self.external.append(url)
            await route.abort()


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[PwBrowser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


NewContext = Callable[[str], Awaitable[tuple[BrowserContext, Offline]]]


@pytest.fixture
async def offline_context(browser: PwBrowser) -> AsyncIterator[NewContext]:
    """New browser contexts (one per user) at 1920×1080, Lisbon time, network: the server only."""
    made: list[BrowserContext] = []

    async def make(origin: str) -> tuple[BrowserContext, Offline]:
        context = await browser.new_context(
            viewport={"width": 1920, "height": 1080},
            locale="en-GB",
            timezone_id="Europe/Lisbon",
        )
        offline = Offline(origin)
        await context.route("**/*", offline.route)
        made.append(context)
        return context, offline

    yield make
    for context in made:
        await context.close()


async def login_page(context: BrowserContext, origin: str, username: str) -> Page:
    """Open the console, get sent to the login page, sign in with the form."""
    page = await context.new_page()
    await page.goto(origin + "/")
    assert "/login" in page.url
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(origin + "/")
    return page
