"""Infrastructure: the event bus, keyed locks, storage (SQLAlchemy) and migrations."""
