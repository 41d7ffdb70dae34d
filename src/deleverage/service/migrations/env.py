"""Alembic environment: migrate the connection ``Storage`` passes in, or ``sqlalchemy.url``.

Run by :meth:`deleverage.service.storage.Storage.migrate` at every start (upgrade to head).
By hand: ``alembic -c /dev/null -x url=sqlite:///risk.db upgrade head`` is not needed; use
``python -c "from deleverage.service.storage import Storage; Storage('URL')"`` instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from deleverage.service.storage import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
