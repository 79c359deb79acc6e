"""Dead-letter retention: rows older than ``dead_letter_retention_days`` are deleted.

Dead letters are for finding out what went wrong, not a record of care (observations
are that); a fuzzing or misbehaving gateway can write many of them. Deleted in batches,
each its own transaction, so pruning a large backlog never holds long locks or one huge
transaction, and two workers pruning at once skip each other's rows.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

log = logging.getLogger(__name__)

PRUNE_BATCH_ROWS = 5_000

_PRUNE = """
DELETE FROM dead_letter WHERE id IN (
    SELECT id FROM dead_letter
    WHERE received_at < now() - make_interval(days => %(days)s)
    ORDER BY received_at
    LIMIT %(rows)s
    FOR UPDATE SKIP LOCKED
)
"""


def prune_dead_letters(
    conn: psycopg.Connection[Any], retention_days: int, *, batch_rows: int = PRUNE_BATCH_ROWS
) -> int:
    """Delete dead letters received more than ``retention_days`` ago; how many were deleted.

    ``retention_days`` 0 keeps them all. ``conn`` must be in autocommit mode (a transaction
    per batch).
    """
    if retention_days <= 0:
        return 0
    if not conn.autocommit:
        raise ValueError("prune_dead_letters needs an autocommit connection")
    total = 0
    while True:
        deleted = conn.execute(_PRUNE, {"days": retention_days, "rows": batch_rows}).rowcount
        total += deleted
        if deleted < batch_rows:
            break
    if total:
        log.info("dead letters pruned", extra={"deleted": total, "retention_days": retention_days})
    return total
