"""User logic: registration, authentication, profile updates, first superuser."""

from __future__ import annotations

from uuid import UUID

from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import save_unique
from core.errors import Conflict, InvalidCredentials, NotFound
from core.models import User
from core.security import hash_password, verify_password
from core.users import repository, sessions


def normalize_email(email: str) -> str:
    """The form an email is stored and compared in: what registration's
    EmailStr makes of it (IDNA domains in Unicode, NFC, no display name),
    lower-cased. Something that is no email address is only trimmed and
    lower-cased (it then matches no account)."""
    try:
        _, address = validate_email(email.strip())
    except PydanticCustomError:
        address = email.strip()
    return address.lower()


async def register(
    session: AsyncSession, *, email: str, password: str, full_name: str | None
) -> User:
    """Create an account; :class:`Conflict` when the email is taken (in any case)."""
    email = normalize_email(email)
    taken = Conflict("an account with this email already exists")
    if await repository.get_by_email(session, email) is not None:
        raise taken
    user = User(email=email, hashed_password=await hash_password(password), full_name=full_name)
    await save_unique(session, user, taken)
    return user


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User:
    """The user whose credentials these are; :class:`InvalidCredentials` otherwise
    (the same error for an unknown email and a wrong password)."""
    user = await repository.get_by_email(session, normalize_email(email))
    ok = await verify_password(password, user.hashed_password if user else None)
    if user is None or not ok:
        raise InvalidCredentials
    return user


async def update_profile(session: AsyncSession, user: User, *, changes: dict[str, object]) -> User:
    """Apply ``full_name`` (the only field a profile update sets directly)."""
    if "full_name" in changes:
        user.full_name = changes["full_name"]  # type: ignore[assignment]
    await session.flush()
    await session.refresh(user)
    return user


async def change_password(session: AsyncSession, user: User, *, current: str, new: str) -> None:
    """Set a new password when ``current`` is right (:class:`InvalidCredentials`
    otherwise) and end every login of the user: a password is changed because
    it may be known to someone else, whose tokens must stop working too."""
    # Locked first: a login checked against the old hash either committed
    # its session before this (and it is revoked below) or sees the new hash.
    await repository.lock_for_update(session, user.id)
    if not await verify_password(current, user.hashed_password):
        raise InvalidCredentials
    user.hashed_password = await hash_password(new)
    await sessions.revoke_all(session, user.id, "password_change")


async def set_active(session: AsyncSession, user_id: UUID, *, active: bool) -> User:
    """Activate or deactivate an account (:class:`NotFound` when unknown);
    deactivating ends every login of the user."""
    user = await repository.lock_for_update(session, user_id)
    if user is None:
        raise NotFound("user not found")
    user.is_active = active
    if not active:
        await sessions.revoke_all(session, user.id, "deactivated")
    await session.flush()
    await session.refresh(user)
    return user


# A page of every user (superusers only; checked by the caller).
page = repository.page


async def ensure_superuser(session: AsyncSession, *, email: str, password: str) -> bool:
    """Create the superuser unless it exists; True when created, False when a
    superuser already has the email. :class:`Conflict` when the email belongs
    to an account that is not a superuser (someone registered it first): it
    is never promoted behind the operator's back."""
    email = normalize_email(email)
    existing = await repository.get_by_email(session, email)
    if existing is not None:
        if not existing.is_superuser:
            raise Conflict(f"{email} belongs to an account that is not a superuser")
        return False
    session.add(User(email=email, hashed_password=await hash_password(password), is_superuser=True))
    await session.flush()
    return True
