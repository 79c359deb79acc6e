"""Audit records: who read or changed which patient's data, when and from where.

Rows are append-only (a trigger in the schema refuses UPDATE/DELETE/TRUNCATE); the API
offers search to auditors and nothing else. The SQL is in ``clinic_api.queries.audit``;
callers keep writing ``audit.record(...)``.
"""

from __future__ import annotations

from clinic_api.queries.audit import AuditFilter, patient_by_pseudonym, record, record_refusal, search

__all__ = ["AuditFilter", "patient_by_pseudonym", "record", "record_refusal", "search"]
