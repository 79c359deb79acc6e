"""``python -m schema``: the schema CLI."""

from schema.cli import app

app(prog_name="python -m schema")
