"""``ConsoleOptions``: the ``api.console`` section of ``cloud.yaml``."""

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # sqlalchemy stays out of `cityops` start-up (edge-only installs lack it)
    from cloud.ops.sessions import SessionLimits


class ConsoleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="Serve the console at / (and /docs offline).")
    tile_url: str = Field(
        default="",
        description="Map tiles, e.g. 'https://tiles.city.example/{z}/{x}/{y}.png' (the city's own "
        "tile server). Empty: markers on a plain background, nothing fetched.",
        max_length=512,
    )
    tile_attribution: str = Field(default="", max_length=256, description="Shown on the map.")
    map_center: tuple[float, float] = Field(
        default=(38.7223, -9.1393), description="Latitude, longitude the map opens on."
    )
    map_zoom: int = Field(default=13, ge=1, le=20, description="Zoom the map opens at.")
    session_idle_minutes: float = Field(
        default=60, gt=0, le=24 * 60, description="A session unused this long ends."
    )
    session_max_hours: float = Field(
        default=12, gt=0, le=7 * 24, description="A session ends this long after sign-in."
    )
    secure_cookie: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="'auto': the session cookie is Secure when the request came over https.",
    )

    @property
    def session_limits(self) -> "SessionLimits":
        from cloud.ops.sessions import SessionLimits

        return SessionLimits(
            idle=timedelta(minutes=self.session_idle_minutes),
            max_age=timedelta(hours=self.session_max_hours),
        )
