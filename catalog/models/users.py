"""Users, their roles and their API tokens."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.db import Base, BigId, Name, Short, UTCDateTime, utcnow

ROLE_READER = "reader"
ROLE_PHYSICIST = "physicist"
ROLE_ADMIN = "admin"
ROLES = (ROLE_READER, ROLE_PHYSICIST, ROLE_ADMIN)


class User(Base):
    """A person who logs in with a password, a token or an X.509 DN."""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(Short, info={"ami": "AMIUser"})
    full_name: Mapped[str | None] = mapped_column(Name, info={"ami": "fullName"})
    email: Mapped[str | None] = mapped_column(Name, info={"ami": "email"})
    password_hash: Mapped[str | None] = mapped_column(String(255))
    dn: Mapped[str | None] = mapped_column(String(512), info={"ami": "clientDN"})
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Raised to end every login session of the user: a session carries the
    # value it began with (web.auth).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    roles: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("login"), UniqueConstraint("dn"))


class Role(Base):
    """A role: ``reader``, ``physicist`` or ``admin``."""

    __tablename__ = "role"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str | None] = mapped_column(String(255))


class UserRole(Base):
    """*user* holds *role*."""

    __tablename__ = "user_role"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    role_name: Mapped[str] = mapped_column(
        ForeignKey("role.name", ondelete="CASCADE"), primary_key=True
    )

    user: Mapped[User] = relationship(back_populates="roles")


class ApiToken(Base):
    """An API token; only its hash is stored, with a prefix to recognise it."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Short)
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    user: Mapped[User] = relationship(back_populates="tokens")

    __table_args__ = (UniqueConstraint("token_hash"), Index(None, "user_id"))
