"""Clinic API and the monitoring team's web pages (FastAPI). See README.md."""

from clinic_api.errors import ClinicError

__all__ = ["ClinicError"]
