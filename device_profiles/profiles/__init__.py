"""Vendor profile files (``*.toml``) shipped with egenmon; a package so that setuptools
installs them as package data. Format: device_profiles/README.md."""
