"""Console settings, `CARELINE_CONSOLE_*` (kept apart from the service's own `Settings`)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CARELINE_CONSOLE_", env_file=".env", extra="ignore"
    )

    # A session ends after this long without a request, and at the latest after `absolute_s`.
    session_idle_s: int = 30 * 60
    session_absolute_s: int = 12 * 3600
    # Failed passwords in a row before an account is locked, and for how long.
    max_failed_logins: int = 5
    lockout_s: int = 15 * 60
    # Sign-in attempts per client address (token bucket): per minute and burst.
    logins_per_min: int = 10
    logins_burst: int = 10
    invitation_ttl_s: int = 72 * 3600
    # A console tab that stops reporting for this long (closed, asleep) turns online into away.
    presence_grace_s: int = 120
    # "auto": Secure when the request came over HTTPS or PUBLIC_URL is https.
    secure_cookie: str = "auto"


@lru_cache
def get_console_settings() -> ConsoleSettings:
    return ConsoleSettings()
