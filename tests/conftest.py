"""Shared test plumbing: real PostgreSQL and Mosquitto (see tests/README.md)."""

pytest_plugins = ["tests.fixtures.db", "tests.fixtures.mqtt"]
