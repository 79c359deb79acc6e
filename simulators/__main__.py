"""`python -m simulators`: the simulators' command line."""

from simulators.cli import app

app(prog_name="egenmon-sim")
