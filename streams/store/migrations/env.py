"""Alembic environment of the audit store.

Run by `streams.store.migrate.upgrade(engine)` with the connection passed in
`config.attributes["connection"]` (the worker migrates at start). For a developer's
`alembic revision --autogenerate`, `-x url=...` names a database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from streams.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # the alembic command line
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///audit.sqlite3")
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
