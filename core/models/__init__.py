"""All models, imported here so that ``Base.metadata`` knows every table."""

from core.models.auth_session import AuthSession, RefreshToken
from core.models.base import Base
from core.models.item import Item
from core.models.job import Job, JobStatus
from core.models.job_file import JobFile, JobFileRole
from core.models.user import User

__all__ = [
    "AuthSession",
    "Base",
    "Item",
    "Job",
    "JobFile",
    "JobFileRole",
    "JobStatus",
    "RefreshToken",
    "User",
]
