"""The base of the settings groups (core/settings.py, core/settings_jobs.py)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsGroup(BaseSettings):
    """Base of every settings group: UPPER_SNAKE environment variables."""

    # Empty variables (``WEB_CONCURRENCY=`` in an env file) mean "use the default".
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)
