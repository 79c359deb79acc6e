"""The row helpers every query module shares: dict rows, one or many."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

Row = dict[str, Any]


def _rows(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _row(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> Row | None:
    rows = _rows(conn, sql, params)
    return rows[0] if rows else None
