"""The base of the settings groups (core/settings.py, core/settings_jobs.py).

Each setting comes from its environment variable or, when that is unset or
empty, from a file of the same name in the secrets directory (one value per
file, as Kubernetes and Docker Swarm mount secrets), or else its default.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

# The variable naming the secrets directory; unset: DEFAULT_SECRETS_DIR when
# it exists (Docker's and Swarm's mount point), else no files are read.
SECRETS_DIR_VARIABLE = "SETTINGS_SECRETS_DIR"
DEFAULT_SECRETS_DIR = Path("/run/secrets")


def secrets_dir() -> Path | None:
    """The directory settings files are read from, or None.

    Raises ValueError when SETTINGS_SECRETS_DIR names no directory: a secret
    volume that failed to mount must stop the process, not leave it on defaults.
    """
    configured = os.environ.get(SECRETS_DIR_VARIABLE, "").strip()
    if not configured:
        return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None
    path = Path(configured)
    if not path.is_dir():
        raise ValueError(f"{SECRETS_DIR_VARIABLE}: {configured!r} is not a directory")
    return path


class SettingsGroup(BaseSettings):
    """Base of every settings group: UPPER_SNAKE environment variables, then files."""

    # Empty variables (``WEB_CONCURRENCY=`` in an env file) mean "use the default".
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' order (environment before files), with the
        directory chosen when the settings are read rather than at import."""
        directory = secrets_dir()
        if directory is None:
            return init_settings, env_settings, dotenv_settings
        files = SecretsSettingsSource(settings_cls, secrets_dir=directory)
        return init_settings, env_settings, dotenv_settings, files
