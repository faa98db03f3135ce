"""Run Alembic from inside the installed package (works from a wheel, not only a checkout)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(url: str) -> Config:
    cfg = Config()
    # Migrations ship inside the package (see pyproject), so this works from a wheel too.
    cfg.set_main_option("script_location", str(files("app.migrations")))
    # ConfigParser interpolation would choke on a '%' in a password.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_to_head(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("postgresql://unused"))


def head_revision() -> str | None:
    return _scripts().get_current_head()


def schema_problem(current: str | None) -> str | None:
    """What is wrong with a database at migration `current`, with what to run; None if
    it is at this build's head."""
    head = head_revision()
    if current == head:
        return None
    if current is None:
        return "the database has no schema yet: run `meter-sync migrate`"
    try:
        _scripts().get_revision(current)
    except Exception:
        return (
            f"the database is at migration {current}, which this build does not know "
            "(a newer version migrated it): run that version"
        )
    return (
        f"the database is at migration {current}, this build needs {head}: run `meter-sync migrate`"
    )


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
        )
