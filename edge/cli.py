"""``cityops edge``: run the agent on a camera, replay a video, inspect the outbox."""

import typer

from edge.cli_pipeline import replay
from edge.cli_uplink import outbox, run

app = typer.Typer(
    help=(
        "The edge agent that runs on a camera unit (Raspberry Pi, Jetson).\n\n"
        "Example: cityops edge replay clip.mp4 --config camera.yaml --events-out events.jsonl"
    ),
    no_args_is_help=True,
)
app.command("replay")(replay)
app.command("run")(run)
app.command("outbox")(outbox)
