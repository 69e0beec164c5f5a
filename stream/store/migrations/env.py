"""Alembic's environment: run by `stream.store.Store.upgrade` on the connection it passes in, or by the
`alembic` command line with `-x url=DATABASE_URL`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from stream.store.schema import metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -x url=DATABASE_URL ...")
    with create_engine(url).connect() as connection:
        run(connection)


main()
