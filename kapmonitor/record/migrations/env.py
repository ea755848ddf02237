"""Alembic environment: runs the migrations on the connection kapmonitor hands over."""

from alembic import context

from kapmonitor.record.schema import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite changes tables by copying them; batch mode does that for us
)
with context.begin_transaction():
    context.run_migrations()
