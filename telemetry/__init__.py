"""Events to InfluxDB points: one mapping, a batching writer, a durable disk spool.

See docs/telemetry.md for the schema and docs/operations.md for how delivery behaves.
"""

SPOOL_FILE = "spool.sqlite3"
