"""The session database's tables (SQLAlchemy 2 ORM); Alembic migrations create and change them.

Append-only by design: a measurement, event or log line is never updated or deleted; a
correction is a new row that names the one it amends, with who and when. Times are stored as
the device stamped them: wall clock (seconds since the epoch) and the monotonic clock.
Waveforms are stored compactly: one zlib-compressed float32 block per device packet or second.
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
