"""``cityops cloud``: ingest MQTT into the store, serve the operations API, keys and users."""

import typer

from cloud.api.cli import db_app, keys_app, serve
from cloud.broker.cli import broker_app
from cloud.connectors.cli import connectors_app
from cloud.console.cli import users_app
from cloud.ingest.cli import ingest

app = typer.Typer(
    help=(
        "The operations center side: ingest events and telemetry, serve the operations API.\n\n"
        "Example: cityops cloud ingest --config cloud.yaml"
    ),
    no_args_is_help=True,
)
app.command("ingest")(ingest)
app.command("serve")(serve)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(broker_app, name="broker")
app.add_typer(connectors_app, name="connectors")
app.add_typer(users_app, name="users")
