"""Simulated patients, gateways and fleets, and the scoring of alerts against labelled episodes.

See simulators/README.md. Imports only ``device_profiles`` of the project's packages.
"""
