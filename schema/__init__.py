"""The shared PostgreSQL schema: its Alembic migrations, table names and the NOTIFY contract.

Every server service (ingest, alerting, clinic_api) and the simulators read and write the
same tables; this package owns them, so no service owns what the others depend on. It may
import ``device_profiles`` and nothing else of egenmon (import-linter keeps it so).

* ``schema.migrate``: ``migrate(database_url)`` applies the migrations in ``schema/migrations``
  (also ``python -m schema upgrade`` and ``egenmon-ingest migrate``).
* ``schema.tables``: the table names as constants.
* ``schema.notify``: the channel on which ingest names the patients with new readings, and
  its payload's encoding.
"""
