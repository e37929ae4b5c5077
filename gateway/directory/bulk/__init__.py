"""Bulk import of devices (sensors, plate cameras, chargers, body cams) from CSV or TOML:
``parse`` (pure: bytes in, typed rows or per-row errors out), ``diff`` (against the
database: added, changed, retired, unchanged) and ``apply`` (one transaction, change feed)."""
