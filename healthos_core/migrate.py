"""Apply the Alembic migrations that ship inside ``healthos_core/migrations``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """Build an Alembic configuration bound to ``engine`` (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (default: the newest).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The database to migrate; created tables follow the entities in ``healthos_core``.
    revision : str, default="head"
        Target Alembic revision.
    """
    command.upgrade(alembic_config(engine), revision)
