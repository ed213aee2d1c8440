"""Which database a setting names: a PostgreSQL URL, or else the SQLite file."""

from __future__ import annotations

from pathlib import Path

from .base import Database, describe
from .postgres import PostgresDatabase
from .sqlite import SQLiteDatabase

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(where: Path | str) -> bool:
    return isinstance(where, str) and where.startswith(POSTGRES_SCHEMES)


__all__ = ["describe", "is_postgres", "open_database"]


async def open_database(where: Path | str) -> Database:
    """The database at ``where``: a ``postgresql://`` URL or a SQLite file's path."""
    if is_postgres(where):
        return await PostgresDatabase.open(str(where))
    return await SQLiteDatabase.open(Path(where))
