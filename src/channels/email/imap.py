"""IMAP mailbox poller (`CARELINE_IMAP_URL`, e.g. `imaps://user:pass@host/INBOX`).

Each unseen message is fetched with `BODY.PEEK[]` (which does not set \\Seen), ingested in
its own unit of work, and flagged \\Seen only after that transaction committed: a crash in
between re-reads the message next time, and de-dup on Message-ID makes that harmless. Mail
that can never be stored (no sender, over the size limit) is flagged \\Seen plus the keyword
`$CarelineRejected`, so it is not retried forever and an operator can find it.
Between rounds the poller waits with IDLE where the server offers it, else it sleeps.
`imap://` is plain text (aioimaplib has no STARTTLS): use it on loopback or a trusted link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aioimaplib  # type: ignore[import-untyped]

from channels.email.receive import receive
from channels.email.webhook import max_bytes
from router.errors import RouterError
from router.files import AttachmentStore
from router.runtime import Runtime

log = logging.getLogger(__name__)

REJECTED_KEYWORD = "$CarelineRejected"
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    username: str
    password: str
    mailbox: str
    tls: bool


def imap_config(url: str) -> ImapConfig:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise ValueError("CARELINE_IMAP_URL must look like imaps://user:pass@host/INBOX")
    return ImapConfig(
        host=parts.hostname,
        port=parts.port or (993 if scheme == "imaps" else 143),
        username=unquote(parts.username),
        password=unquote(parts.password or ""),
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        tls=scheme == "imaps",
    )


class ImapError(Exception):
    pass


def _ok(resp: Any, what: str) -> Any:
    if resp.result != "OK":
        raise ImapError(f"IMAP {what} failed: {resp.result}")
    return resp


class ImapPoller:
    def __init__(
        self,
        rt: Runtime,
        config: ImapConfig,
        *,
        store: AttachmentStore | None = None,
        poll_s: float = 60.0,
        idle_s: float = 300.0,
        batch: int = 50,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.rt = rt
        self.config = config
        self.store = store or AttachmentStore.from_settings(rt.settings)
        self.poll_s = poll_s
        self.idle_s = idle_s
        self.batch = batch
        self.ssl_context = ssl_context
        self._imap: Any = None

    @classmethod
    def from_settings(cls, rt: Runtime) -> ImapPoller | None:
        url = rt.settings.imap_url.get_secret_value() if rt.settings.imap_url else ""
        return cls(rt, imap_config(url)) if url else None

    async def connect(self) -> Any:
        if self._imap is not None:
            return self._imap
        cfg = self.config
        if cfg.tls:
            imap = aioimaplib.IMAP4_SSL(
                host=cfg.host,
                port=cfg.port,
                ssl_context=self.ssl_context or ssl.create_default_context(),
            )
        else:
            imap = aioimaplib.IMAP4(host=cfg.host, port=cfg.port)
        await imap.wait_hello_from_server()
        _ok(await imap.login(cfg.username, cfg.password), "LOGIN")
        _ok(await imap.select(cfg.mailbox), "SELECT")
        self._imap = imap
        return imap

    async def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(imap.logout(), 5)

    async def run_once(self) -> int:
        """Ingest up to `batch` unseen messages; returns how many were handled."""
        imap = await self.connect()
        resp = _ok(await imap.uid_search("UNSEEN", charset=None), "SEARCH")
        uids = [u for line in resp.lines[:1] for u in bytes(line).split() if u.isdigit()]
        done = 0
        for uid in uids[: self.batch]:
            done += await self._one(imap, uid.decode())
        return done

    async def _one(self, imap: Any, uid: str) -> bool:
        """Handle one message; True when it was flagged (so it will not come back)."""
        limit = max_bytes(self.rt.settings)
        size_resp = _ok(await imap.uid("fetch", uid, "(RFC822.SIZE)"), "FETCH")
        m = _SIZE.search(b" ".join(bytes(x) for x in size_resp.lines))
        if m and int(m[1]) > limit:
            log.warning("email over the size limit, not ingested", extra={"imap_uid": uid})
            await self._flag(imap, uid, rejected=True)
            return True
        resp = _ok(await imap.uid("fetch", uid, "(BODY.PEEK[])"), "FETCH")
        raw = next((bytes(x) for x in resp.lines if isinstance(x, bytearray)), None)
        if raw is None:
            log.warning("IMAP FETCH returned no body", extra={"imap_uid": uid})
            return False
        try:
            async with self.rt.db.session() as session:
                outcome = await receive(session, self.rt, raw, store=self.store)
        except RouterError as exc:
            if exc.status_code >= 500 or exc.status_code == 409:
                raise  # database trouble or a contended retry: leave it unseen, try again
            log.warning("email rejected", extra={"imap_uid": uid, "error": exc.title})
            await self._flag(imap, uid, rejected=True)
            return True
        # Only now, after the commit: a crash before this line re-reads the message.
        await self._flag(imap, uid, rejected=False)
        log.info("imap message handled", extra={"imap_uid": uid, "status": outcome.status})
        return True

    @staticmethod
    async def _flag(imap: Any, uid: str, *, rejected: bool) -> None:
        flags = "(\\Seen)" if not rejected else f"(\\Seen {REJECTED_KEYWORD})"
        _ok(await imap.uid("store", uid, "+FLAGS.SILENT", flags), "STORE")

    async def wait_for_mail(self, stop: asyncio.Event) -> None:
        imap = self._imap
        if imap is None or not imap.has_capability("IDLE"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
            return
        idle = await imap.idle_start(timeout=self.idle_s)
        push = asyncio.ensure_future(imap.wait_server_push(timeout=self.idle_s))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({push, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (push, stopping):
                task.cancel()
            with contextlib.suppress(Exception):
                imap.idle_done()
                await asyncio.wait_for(idle, 10)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: drain unseen mail, then IDLE (or sleep); reconnect after errors."""
        backoff = 1.0
        while not stop.is_set():
            try:
                while await self.run_once() >= self.batch:
                    pass
                backoff = 1.0
                await self.wait_for_mail(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("imap polling failed", extra={"error": type(exc).__name__})
                await self.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 300.0)
        await self.close()


async def run_imap(rt: Runtime, stop: asyncio.Event) -> None:
    """Entry point for the lead's wiring (lifespan task or `careline email poll`)."""
    poller = ImapPoller.from_settings(rt)
    if poller is None:
        return
    await poller.run(stop)
