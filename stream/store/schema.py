"""The store's tables (SQLAlchemy Core). The migrations under `migrations/versions/` create exactly these; a test
compares the two.

Times are UNIX seconds (float): portable between SQLite and PostgreSQL and exact on a round trip. Tokens are
never stored: `token_hash` and `profile_hash` are SHA-256 hex digests (stream.store.digest).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table, Text

metadata = MetaData()

ID = 64  # ids are 22-43 URL-safe characters
DIGEST = 64  # SHA-256 in hex

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("token_hash", String(DIGEST), nullable=False),
    Column("profile_hash", String(DIGEST), nullable=True, index=True),
    Column("reference", String(ID), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("record", JSON, nullable=False),
    Column("mean_score", Float, nullable=True),
    Column("ticks", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False, index=True),
)

session_files = Table(
    "session_files",
    metadata,
    Column("session", String(ID), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("content", Text, nullable=False),
)

references = Table(
    "references",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("backend", String(40), nullable=True),
    Column("meta", JSON, nullable=False),
    Column("path", String(300), nullable=False),  # the reference's folder, relative to the data dir
    Column("created_at", Float, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("reference", String(ID), nullable=False),
    Column("title", String(200), nullable=False),
    Column("pose", String(40), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("progress", Float, nullable=False),
    Column("error", Text, nullable=True),
    Column("source", String(300), nullable=False),  # the video to build, relative to the data dir
    Column("fps", Float, nullable=False),
    Column("remove_source", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("owner", String(ID), nullable=True),  # the server process that claimed the job (stream.jobstore)
    Column("lease_until", Float, nullable=True),  # its claim holds until then; afterwards any server may take it
)
