"""Password policy: refuse common passwords and passwords containing the email's name.

Length is not checked here: the API's schemas bound a password to 8..128 characters.
The list and its provenance: ``common_passwords.txt`` and ``COMMON_PASSWORDS.md``
beside this module.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_LIST = Path(__file__).with_name("common_passwords.txt")

# The number of entries in common_passwords.txt; a unit test keeps it true.
COMMON_PASSWORDS_COUNT = 30_000

COMMON_PASSWORD_PROBLEM = (
    f"This password is one of the {COMMON_PASSWORDS_COUNT:,} most common passwords; choose another."
)
EMAIL_NAME_PROBLEM = "The password must not contain the email address's name (the part before @)."

# A local part shorter than this is not looked for in the password: "al" or "jo"
# occurs in too many good passwords ("always-salty-9"), so refusing it would
# refuse far more than it protects.
_MIN_NAME_LENGTH = 3


class CommonPasswords:
    """The list as the file's bytes, one password a line, searched for
    ``\\n<password>\\n`` (a memmem over 240 KB, microseconds, on the rare
    routes that set a password): a ``frozenset`` of the 30,000 strings held
    about 4 MB in every api process that registered a user."""

    def __init__(self, lines: bytes) -> None:
        self._blob = b"\n" + lines.strip(b"\n") + b"\n"
        self._count = self._blob.count(b"\n") - 1

    def __contains__(self, password: object) -> bool:
        # A line never holds a newline: such a password would otherwise match
        # two neighbouring lines at once.
        if not isinstance(password, str) or not password or "\n" in password:
            return False
        return b"\n" + password.encode() + b"\n" in self._blob

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes the list takes."""
        return len(self._blob)


@cache
def common_passwords() -> CommonPasswords:
    """The common passwords (lower-cased in the file); read on first use,
    once per process."""
    return CommonPasswords(_LIST.read_bytes())


def _email_names(email: str) -> set[str]:
    """The email's local part, lower-cased, and the same without a ``+tag``."""
    local, at, _domain = email.strip().lower().rpartition("@")
    if not at:
        return set()
    names = {local, local.partition("+")[0]}
    return {name for name in names if len(name) >= _MIN_NAME_LENGTH}


def password_problem(password: str, email: str | None = None) -> str | None:
    """None if the password is acceptable, else one sentence telling the user why not."""
    lowered = password.lower()
    if lowered.strip() in common_passwords():
        return COMMON_PASSWORD_PROBLEM
    if email is not None and any(name in lowered for name in _email_names(email)):
        return EMAIL_NAME_PROBLEM
    return None
