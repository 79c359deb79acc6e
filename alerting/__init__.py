"""egenmon alerting: the vectorised rules engine, the rule registry and the alert lifecycle."""

from __future__ import annotations

# Re-exported for callers that import it from the package (it lives in errors.py).
from alerting.errors import AlertingError

__all__ = ["AlertingError"]
