"""``install_console(app)``: the console's pages, static files and an offline ``/docs``."""

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from cloud.console.auth import LoginThrottle
from cloud.console.routes import (
    STATIC_PREFIX,
    SignInRequiredError,
    api_router,
    docs_router,
    router,
    sign_in_first,
)

SWAGGER_PREFIX = "/console/swagger"
_CDN_DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


def install_console(app: FastAPI) -> None:
    """Mount the console on *app* (called by ``create_app``) unless ``api.console.enabled`` is off.

    FastAPI's own ``/docs`` and ``/redoc`` load their scripts from a CDN: they are replaced by
    a page that loads Swagger UI from this server.
    """
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "path", None) not in _CDN_DOC_PATHS
    ]
    throttle = app.state.login_throttle = LoginThrottle()
    failures = Counter(
        "cityops_console_login_failures",
        "Failed console sign-ins (wrong password, unknown or disabled user).",
        registry=app.state.metrics.registry,
    )
    throttle.on_failure = failures.inc
    static = resources.files("cloud.console") / "static"
    app.mount(STATIC_PREFIX, StaticFiles(directory=str(static)), name="console-static")
    app.mount(SWAGGER_PREFIX, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.include_router(docs_router)
    if not app.state.settings.api.console.enabled:
        return
    app.add_exception_handler(SignInRequiredError, sign_in_first)
    app.include_router(router)
    app.include_router(api_router)
