"""numerics and waveforms in compact blocks, codes stored once, batch names as runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 07:40:00

Every session already recorded is moved into blocks here (see kapmonitor.record.compaction):
the same values, times, flags and order, read by the same Store.load_session. A database grows
no bigger for it; SQLite keeps the pages freed for the sessions to come (VACUUM returns them).
"""

import zlib

import numpy as np
import sqlalchemy as sa
from alembic import op

from kapmonitor.record import compaction

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    blocks: list[tuple[str, list[sa.Column]]] = [
        ("numeric_blocks", []),
        ("wave_blocks", [sa.Column("fs", sa.Float(), nullable=False),
                         sa.Column("blocks", sa.Integer(), nullable=False)]),
    ]  # fmt: skip
    for name, extra in blocks:
        op.create_table(
            name,
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("session_id", sa.Integer(), nullable=False),
            sa.Column("device_id", sa.Integer(), nullable=False),
            sa.Column("code_id", sa.Integer(), nullable=False),
            *extra,
            sa.Column("n", sa.Integer(), nullable=False),
            sa.Column("t_first", sa.Float(), nullable=False),
            sa.Column("t_last", sa.Float(), nullable=False),
            sa.Column("flag_sets", sa.Text(), nullable=False),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.ForeignKeyConstraint(["code_id"], ["codes.id"]),
            sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
            sa.ForeignKeyConstraint(["session_id"], ["sessions.id"]),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(f"ix_{name}_session_time", name, ["session_id", "t_first"])
    op.create_table(
        "record_batch_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("writer", sa.String(length=32), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_record_batch_runs_writer", "record_batch_runs", ["writer", "first_seq"])
    conn = op.get_bind()
    for (session_id,) in conn.execute(sa.text("SELECT id FROM sessions ORDER BY id")).all():
        compaction.compact_all(conn, session_id)


def downgrade() -> None:
    """The blocks back into rows (ids kept), then the new tables dropped."""
    conn = op.get_bind()
    codes: dict[int, str] = {i: c for i, c in conn.execute(sa.text("SELECT id, code FROM codes"))}
    numerics = sa.table(
        "numerics", *(sa.column(c) for c in ("id", "session_id", "device_id", "code", "value",
                                             "flags", "t_wall", "t_mono"))
    )  # fmt: skip
    query = "SELECT session_id, device_id, code_id, n, flag_sets, data FROM numeric_blocks"
    for sid, did, cid, n, sets, data in conn.execute(sa.text(query)).all():
        ids, wall, mono, values, state = compaction.numeric_block(n, data)
        texts = sets.split("|")
        rows = [{"id": i, "session_id": sid, "device_id": did, "code": codes[cid],
                 "value": None if s & compaction.MISSING else v,
                 "flags": texts[s & ~compaction.MISSING], "t_wall": w, "t_mono": m}
                for i, w, m, v, s in zip(ids.tolist(), wall.tolist(), mono.tolist(),
                                         values.tolist(), state.tolist(), strict=True)]  # fmt: skip
        conn.execute(numerics.insert(), rows)
    waves = sa.table(
        "waves", *(sa.column(c) for c in ("id", "session_id", "device_id", "code", "fs", "n",
                                          "data", "flags", "t_wall", "t_mono"))
    )  # fmt: skip
    query = "SELECT session_id, device_id, code_id, fs, blocks, n, flag_sets, data FROM wave_blocks"
    for sid, did, cid, fs, count, n, sets, data in conn.execute(sa.text(query)).all():
        ids, sizes, wall, mono, state, samples = compaction.wave_block(count, n, data)
        texts = sets.split("|")
        ends = np.cumsum(sizes)
        rows = []
        for k in range(count):
            part = samples[ends[k] - sizes[k] : ends[k]].astype("<f4")
            rows.append({"id": int(ids[k]), "session_id": sid, "device_id": did,
                         "code": codes[cid], "fs": fs, "n": len(part),
                         "data": zlib.compress(part.tobytes(), 6), "flags": texts[state[k]],
                         "t_wall": float(wall[k]), "t_mono": float(mono[k])})  # fmt: skip
        conn.execute(waves.insert(), rows)
    batches = sa.table("record_batches", *(sa.column(c) for c in ("session_id", "writer", "seq")))
    query = "SELECT session_id, writer, first_seq, last_seq FROM record_batch_runs"
    for sid, writer, first, last in conn.execute(sa.text(query)).all():
        conn.execute(
            batches.insert(),
            [{"session_id": sid, "writer": writer, "seq": q} for q in range(first, last + 1)],
        )
    op.drop_table("record_batch_runs")
    op.drop_table("wave_blocks")
    op.drop_table("numeric_blocks")
    op.drop_table("codes")
