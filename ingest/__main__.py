"""``python -m ingest``: the ingest CLI."""

from ingest.cli import app

app(prog_name="egenmon-ingest")
