"""Email channel fixtures: the webhook mounted, a real SMTP server (aiosmtpd) on loopback,
the adapter registered like in production, and the attachment store in a temp folder."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from channels.email.adapter import EmailChannel
from channels.email.compose import smtp_config
from channels.email.webhook import api_router
from channels.signing import hmac_sha256_header
from router.api import create_app
from router.files import AttachmentStore
from router.runtime import Runtime

SECRET = "email-webhook-secret-0123456789"
FROM = "Clinica Sol <ayuda@clinica.example>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Recorder:
    """aiosmtpd handler: records every accepted message; `rcpt_reply` scripts refusals."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    rcpt_reply: list[str] = field(default_factory=list)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), mail))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def email_rt(rt: Runtime, tmp_path: Path, smtp_server: tuple[Recorder, int]) -> Runtime:
    _, port = smtp_server
    rt.settings = rt.settings.model_copy(
        update={
            "webhook_secret": SecretStr(SECRET),
            "email_from": FROM,
            "smtp_url": SecretStr(f"smtp://127.0.0.1:{port}?timeout=5"),
            # Proposed settings (not in Settings yet); read with getattr by the channel.
            "email_store_dir": str(tmp_path / "attachments"),
            "email_max_bytes": 2_000_000,
            "email_authserv_ids": ["mx.clinica.example"],
        }
    )
    adapter = EmailChannel.from_settings(rt.settings, rt.db)
    assert adapter is not None
    adapter.clock = rt.clock
    rt.channels["email"] = adapter
    return rt


@pytest.fixture
def store(email_rt: Runtime) -> AttachmentStore:
    return AttachmentStore.from_settings(email_rt.settings)


@pytest.fixture
async def email_client(email_rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=email_rt)
    if "/webhooks/email" not in {getattr(r, "path", None) for r in app.routes}:
        app.include_router(api_router)  # until the lead mounts it in create_app()
    app.state.runtime = email_rt  # ASGITransport does not run the lifespan
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://careline.test") as c:
        yield c


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "message/rfc822",
        "X-Careline-Signature": hmac_sha256_header(secret, body),
    }


async def post_mail(client: httpx.AsyncClient, raw: bytes) -> httpx.Response:
    return await client.post("/webhooks/email", content=raw, headers=signed(raw))


__all__ = ["FROM", "SECRET", "Recorder", "post_mail", "signed", "smtp_config"]
