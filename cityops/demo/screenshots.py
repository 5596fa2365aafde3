"""Screenshots of every console screen from a running API (``cityops demo --keep``), for docs.

Example::

    cityops demo --short --keep            # prints the console URL and the demo login
    echo "$PASSWORD" | python -m cityops.demo.screenshots --url http://127.0.0.1:PORT
        --username demo --out docs/console  # (one line)

Drives Debian's Chromium through Playwright (``executable_path``, no browser download); every
request to anything but the console's server is refused and reported, so the pictures also show
that the console works offline.
"""

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

CHROMIUM = "/usr/bin/chromium"


async def take(  # noqa: PLR0917 - one call site
    url: str, username: str, password: str, out: Path, lang: str, act: bool
) -> list[str]:
    from playwright.async_api import Route, async_playwright

    external: list[str] = []

    async def only_server(route: Route) -> None:
        if route.request.url.startswith(url):
            await route.continue_()
        else:
            external.append(route.request.url)
            await route.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--no-first-run"],
        )
        context = await browser.new_context(
            viewport={"width": 1440, "height": 900},
            locale="pt-PT" if lang == "pt-PT" else "en-GB",
            timezone_id="Europe/Lisbon",
        )
        await context.route("**/*", only_server)
        page = await context.new_page()
        await page.goto(f"{url}/login")
        await page.screenshot(path=out / f"login-{lang}.png")
        await page.locator("#username").fill(username)
        await page.locator("#password").fill(password)
        await page.locator("#login-submit").click()
        await page.wait_for_url(f"{url}/")
        await page.locator("#live-state.on").wait_for()
        rows = page.locator("#queue-rows tr")
        if act and await rows.count():
            # A real action by the signed-in user: the least urgent incident is acknowledged.
            await rows.last.locator("button.act-acknowledge").click()
            await page.locator("#queue-rows tr[data-status=acknowledged]").wait_for()
        await page.wait_for_timeout(1500)
        await page.screenshot(path=out / f"queue-{lang}.png")
        pick = rows.last if act else rows.first
        if await pick.count():
            await pick.locator("a").click()
            await page.locator("#audit-rows tr").first.wait_for()
            await page.wait_for_timeout(1500)
            await page.screenshot(path=out / f"incident-{lang}.png", full_page=True)
        for name, ready in (
            ("map", ".marker"),
            ("devices", "#device-rows tr"),
            ("events", "#chart svg"),
        ):
            await page.goto(f"{url}/{name}")
            await page.locator(ready).first.wait_for(state="attached")
            await page.wait_for_timeout(1500)
            await page.screenshot(path=out / f"{name}-{lang}.png")
        await browser.close()
    return external


def shrink(folder: Path) -> None:
    """256-colour PNGs: a third of the size, still sharp for docs (when Pillow is installed)."""
    try:
        from PIL import Image
    except ImportError:
        typer.echo("Pillow not installed: PNGs kept at full size (pip install pillow)", err=True)
        return

    for path in folder.glob("*.png"):
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)


def main(  # noqa: PLR0917 - a Typer command: one parameter per option
    url: Annotated[str, typer.Option(help="The API, e.g. http://127.0.0.1:8080.")],
    username: Annotated[str, typer.Option(help="A console user (the demo prints one).")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = True,
    out: Annotated[Path, typer.Option(help="Where the PNG files go.")] = Path("docs/console"),
    lang: Annotated[str, typer.Option(help="en or pt-PT.")] = "en",
    act: Annotated[
        bool, typer.Option(help="Acknowledge the least urgent incident first (a real action).")
    ] = False,
) -> None:
    """Sign in and save a PNG of each console screen."""
    password = sys.stdin.readline().strip() if password_stdin else typer.prompt("Password")
    out.mkdir(parents=True, exist_ok=True)
    external = asyncio.run(take(url.rstrip("/"), username, password, out, lang, act))
    if external:
        typer.echo(f"external requests were refused: {external}", err=True)
        raise typer.Exit(1)
    shrink(out)
    typer.echo(f"screenshots in {out}")


if __name__ == "__main__":
    typer.run(main)
