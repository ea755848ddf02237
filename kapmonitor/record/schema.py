"""The session database's tables (SQLAlchemy 2 ORM); Alembic migrations create and change them.

Append-only by design: a measurement, event or log line is never updated or deleted; a
correction is a new row that names the one it amends, with who and when. Times are stored as
the device stamped them: wall clock (seconds since the epoch) and the monotonic clock.
Waveforms are stored compactly: one zlib-compressed float32 block per device packet or second.

Numerics and waveform blocks arrive one row per item (``numerics``, ``waves``: the live write,
cheap and crash-safe), and are moved, a minute at a time, into compact blocks
(``numeric_blocks``, ``wave_blocks``; see :mod:`~kapmonitor.record.compaction`): the same
values, times and flags bit for bit, about a third of the bytes. A reader takes both.
"""

from __future__ import annotations

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    patient: Mapped[str] = mapped_column(String(200))
    clinician: Mapped[str] = mapped_column(String(200), default="")
    operator: Mapped[str] = mapped_column(String(200), default="")
    drug: Mapped[str | None] = mapped_column(String(40))
    route: Mapped[str | None] = mapped_column(String(40))
    dose: Mapped[float | None] = mapped_column(Float)
    dose_unit: Mapped[str] = mapped_column(String(20), default="")
    started: Mapped[float] = mapped_column(Float)
    ended: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), index=True)
    alarm_profile: Mapped[str] = mapped_column(String(200), default="")
    #: The profile as it was when the session started, so the record says what limits applied.
    alarm_profile_text: Mapped[str] = mapped_column(Text, default="")
    #: Who is recording: host and process, and when it last wrote (finds interrupted sessions).
    owner: Mapped[str] = mapped_column(String(200), default="")
    #: The recorder's lease: the database's own clock at its last commit (see Store.write).
    heartbeat: Mapped[float | None] = mapped_column(Float)


class DeviceRow(Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    source: Mapped[str] = mapped_column(String(300))
    protocol: Mapped[str] = mapped_column(String(40))
    port: Mapped[str] = mapped_column(String(300))
    serial_number: Mapped[str | None] = mapped_column(String(100))


class NumericRow(Base):
    __tablename__ = "numerics"
    __table_args__ = (Index("ix_numerics_session_time", "session_id", "t_wall"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    code: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[str] = mapped_column(String(200), default="")
    t_wall: Mapped[float] = mapped_column(Float)
    t_mono: Mapped[float] = mapped_column(Float)


class NibpRow(Base):
    __tablename__ = "nibp"
    __table_args__ = (Index("ix_nibp_session_time", "session_id", "t_wall"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    systolic: Mapped[float | None] = mapped_column(Float)
    diastolic: Mapped[float | None] = mapped_column(Float)
    mean: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[str] = mapped_column(String(200), default="")
    t_wall: Mapped[float] = mapped_column(Float)
    t_mono: Mapped[float] = mapped_column(Float)


class WaveRow(Base):
    __tablename__ = "waves"
    __table_args__ = (Index("ix_waves_session_time", "session_id", "t_wall"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    code: Mapped[str] = mapped_column(String(64))
    fs: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)  #: zlib(float32 little-endian samples)
    flags: Mapped[str] = mapped_column(String(200), default="")
    t_wall: Mapped[float] = mapped_column(Float)  #: the first sample's time
    t_mono: Mapped[float] = mapped_column(Float)


class CodeRow(Base):
    """A measurement code (IEEE 11073 name), stored once and named by its number in blocks."""

    __tablename__ = "codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)


class NumericBlockRow(Base):
    """Up to a minute of one device's numerics of one code, packed (see
    :mod:`~kapmonitor.record.compaction`): row ids, wall and monotonic times, values, flags."""

    __tablename__ = "numeric_blocks"
    __table_args__ = (Index("ix_numeric_blocks_session_time", "session_id", "t_first"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id"))
    n: Mapped[int] = mapped_column(Integer)  #: numerics in it
    t_first: Mapped[float] = mapped_column(Float)  #: the first one's wall time
    t_last: Mapped[float] = mapped_column(Float)  #: the last one's wall time
    flag_sets: Mapped[str] = mapped_column(Text, default="")  #: distinct flag texts, "|"-joined
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WaveBlockRow(Base):
    """Up to a minute of one device's waveform of one code and rate: the blocks as they came
    (row ids, sizes, times, flags) and their samples, packed (see
    :mod:`~kapmonitor.record.compaction`)."""

    __tablename__ = "wave_blocks"
    __table_args__ = (Index("ix_wave_blocks_session_time", "session_id", "t_first"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    code_id: Mapped[int] = mapped_column(ForeignKey("codes.id"))
    fs: Mapped[float] = mapped_column(Float)
    blocks: Mapped[int] = mapped_column(Integer)  #: device blocks in it
    n: Mapped[int] = mapped_column(Integer)  #: samples in it
    t_first: Mapped[float] = mapped_column(Float)  #: the first block's start (wall clock)
    t_last: Mapped[float] = mapped_column(Float)  #: the last block's start (wall clock)
    flag_sets: Mapped[str] = mapped_column(Text, default="")  #: distinct flag texts, "|"-joined
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ValueRow(Base):
    """A device value with no IEEE 11073 code, kept under its vendor key."""

    __tablename__ = "device_values"
    __table_args__ = (Index("ix_device_values_session_time", "session_id", "t_wall"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(40), default="")
    text: Mapped[str] = mapped_column(String(200), default="")
    flags: Mapped[str] = mapped_column(String(200), default="")
    t_wall: Mapped[float] = mapped_column(Float)
    t_mono: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_session_time", "session_id", "t_wall"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str | None] = mapped_column(String(300))
    author: Mapped[str | None] = mapped_column(String(200))
    amends: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    t_wall: Mapped[float] = mapped_column(Float)
    t_mono: Mapped[float] = mapped_column(Float)


class AlarmRow(Base):
    """The alarm log: condition starts and ends, acknowledgments, pauses, limit changes."""

    __tablename__ = "alarm_log"
    __table_args__ = (Index("ix_alarm_log_session_time", "session_id", "t_wall"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    event: Mapped[str] = mapped_column(String(40))
    condition: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str | None] = mapped_column(String(10))
    kind: Mapped[str | None] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(300))
    code: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    limit: Mapped[float | None] = mapped_column(Float)
    operator: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    t_wall: Mapped[float] = mapped_column(Float)
    t_mono: Mapped[float] = mapped_column(Float)


class AuditRow(Base):
    """Who changed what in the record, and when: amendments, status changes, exports."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    who: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    detail: Mapped[str] = mapped_column(Text, default="")


class BatchRow(Base):
    """A recorder's batch that is committed: a batch written again (replayed from a spool after
    a crash between the commit and the spool being emptied) is recognised and stored once."""

    __tablename__ = "record_batches"
    __table_args__ = (UniqueConstraint("writer", "seq", name="uq_record_batches_writer_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    writer: Mapped[str] = mapped_column(String(32))  #: the recorder's random id
    seq: Mapped[int] = mapped_column(Integer)


class BatchRunRow(Base):
    """Committed batches ``first_seq`` to ``last_seq`` of one writer: what compaction keeps of
    :class:`BatchRow` (one row a batch, two a second) once the batches are in blocks."""

    __tablename__ = "record_batch_runs"
    __table_args__ = (Index("ix_record_batch_runs_writer", "writer", "first_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"))
    writer: Mapped[str] = mapped_column(String(32))
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
