"""The store: the bridge's source of truth (SQLite embedded, PostgreSQL in production)."""
