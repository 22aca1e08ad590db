"""All configuration, from `CARELINE_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELINE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./careline.db"
    admin_token: SecretStr | None = None
    policy: str | None = None  # path to a policy TOML; None = the packaged default
    public_url: str = "http://127.0.0.1:8000"
    # The module that lists the channel plug-ins (`PLUGINS`): the router never imports a
    # channel by name, so a deployment can add or drop one without touching the router.
    channels: str = "channels.registry"
    # Group commit (PostgreSQL): concurrent inbound deliveries share a transaction of at most
    # this many, with this many batches in flight; 1 and 1 is one transaction per delivery.
    group_commit_max: int = 32
    group_commit_runners: int = 2
    # PostgreSQL connections per instance, kept open: a request that finds none free waits
    # (up to DB_POOL_TIMEOUT_S) instead of opening one. An opened-and-closed overflow
    # connection costs a TLS/auth handshake and an empty prepared-statement cache each time,
    # which under a burst was about 6 % of the server's CPU.
    db_pool_size: int = 30
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 30.0

    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_base: str | None = None

    webhook_secret: SecretStr | None = None  # the shared secret the keys below derive from
    # One key per use; unset, each is HMAC(WEBHOOK_SECRET, "careline <use> v1"), so a leak
    # of one (the app back-end holds the callback key) forges none of the others.
    inbound_webhook_secret: SecretStr | None = None  # X-Careline-Signature on email/calls
    app_callback_secret: SecretStr | None = None  # signs pushes to APP_CALLBACK_URL
    telegram_link_secret: SecretStr | None = None  # checks /start deep-link tokens
    # X-Careline-Signature is t=<unix>,v1=<hex>; a timestamp further than this is a replay.
    signature_tolerance_s: int = 300
    # Transition: also accept body-only `sha256=` signed with WEBHOOK_SECRET (and link tokens
    # minted with it), with a deprecation warning each time. Turn off once senders moved.
    signature_legacy: bool = True
    smtp_url: SecretStr | None = None
    email_from: str | None = None
    imap_url: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None

    # Email: where attachments and raw messages are kept (by reference, never in the DB).
    email_store_dir: str = "./var/attachments"
    email_max_bytes: int = 10_000_000
    imap_poll_s: float = 60.0
    # Whose Authentication-Results to believe (the provider's authserv-id, "mx.google.com").
    # A sender is authentic on DMARC pass, or DKIM/SPF pass aligned with the From domain;
    # other mail is shown as unverified and never threads by From alone. False trusts From:
    # alone, for a provider that adds no such header (anyone can then write as a patient).
    email_authserv_ids: list[str] = []
    email_require_authentication: bool = True
    imap_idle_s: float = 300.0

    # Web chat: the token key (unset: derived from WEBHOOK_SECRET; neither: random per process,
    # so tokens die with a restart), origins allowed to embed the widget, and limits.
    webchat_secret: SecretStr | None = None
    webchat_allowed_origins: list[str] = []  # ["https://clinic.example"]; ["*"] = any
    webchat_token_ttl_s: int = 30 * 86400
    webchat_max_frame_bytes: int = 16_384
    webchat_max_text_chars: int = 4000
    webchat_messages_per_minute: int = 20
    webchat_max_sockets: int = 5
    webchat_poll_s: float = 2.0
    webchat_send_timeout_s: float = 10.0  # a socket that reads nothing this long is dropped
    # Mail an agent reply no socket showed after this long (to a confirmed email only).
    webchat_mail_after_s: float = 120.0

    # App channel: where replies are pushed (signed with WEBHOOK_SECRET); unset = apps pull.
    app_callback_url: str | None = None
    default_region: str = "ES"  # for phone numbers written in national format

    reopen_window_s: int = 7 * 86400
    outbox_max_attempts: int = 8
    outbox_backoff_base_s: float = 2.0
    outbox_backoff_max_s: float = 600.0
    outbox_lease_s: float = 60.0
    worker_poll_s: float = 1.0
    # Request body limits (413 beyond): webhooks; the email webhook takes EMAIL_MAX_BYTES.
    max_body_bytes: int = 1_000_000
    api_max_body_bytes: int = 256_000  # agents' and apps' JSON (text, never file bytes)
    # Requests per minute (sustained) and burst, per API token and per webhook client address;
    # 0 turns a limit off. Providers retry 429s, so a flood slows down rather than gets lost.
    rate_limit_api_per_min: int = 600
    rate_limit_api_burst: int = 120
    # Integration tokens: one app back-end forwards every customer's messages.
    rate_limit_integration_per_min: int = 6000
    rate_limit_integration_burst: int = 1000
    rate_limit_webhooks_per_min: int = 3000
    rate_limit_webhooks_burst: int = 600
    # Erasure: the HMAC key of the hashes of erased identities (`erased_identities`), so an
    # audit can tell that a later message came from an erased identity without keeping the
    # identity. Keep it stable: a new key stops old hashes from matching. Unset: derived from
    # WEBHOOK_SECRET, then ADMIN_TOKEN.
    erasure_key: SecretStr | None = None
    log_level: str = "INFO"
    # Run the background workers (outbox, SLA scheduler) in this process.
    run_workers: bool = True

    def erasure_hmac_key(self) -> bytes:
        if self.erasure_key is not None:
            return self.erasure_key.get_secret_value().encode()
        base = self.webhook_secret or self.admin_token
        # Without any secret the hashes are only salted by this constant (still no identity
        # kept in clear, but guessable for phone numbers): set CARELINE_ERASURE_KEY.
        seed = base.get_secret_value().encode() if base is not None else b""
        return hmac.new(seed, b"careline erasure key", hashlib.sha256).digest()


@lru_cache
def get_settings() -> Settings:
    return Settings()
