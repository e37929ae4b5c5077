"""Events to InfluxDB points, batching writer and disk spool (issue 3)."""
