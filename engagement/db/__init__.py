"""Durable records behind one small interface: SQLite (embedded) or PostgreSQL (several
nodes), one schema, one list of migrations, one set of queries."""
