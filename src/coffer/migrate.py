"""Running Alembic from code: the CLI's `migrate`, `serve` on SQLite, and the tests.

The Alembic configuration is built here, not read from `alembic.ini`, so an installed wheel
(which carries the migrations as `coffer/migrations`) migrates exactly like the source tree.
`alembic.ini` stays for developers' `alembic revision`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

SOURCE_TREE_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def migrations_directory() -> Path:
    """The migrations shipped inside the package (a wheel), else the source tree's."""
    packaged = Path(str(resources.files("coffer") / "migrations"))
    return packaged if (packaged / "env.py").is_file() else SOURCE_TREE_MIGRATIONS


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration. Call from synchronous code (Alembic runs its own loop)."""
    command.upgrade(alembic_config(database_url), "head")


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head
