"""IMAP polling against a real Dovecot (Debian's dovecot-imapd) on a loopback port, started
per test with a throw-away configuration. Skipped when the binary is not installed."""

from __future__ import annotations

import asyncio
import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.email.imap import REJECTED_KEYWORD, ImapPoller, imap_config
from models import Message
from router.errors import Unavailable
from router.runtime import Runtime
from tests.integration.channels.email.conftest import free_port
from tests.integration.channels.email.support import mail

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
)
pytestmark = pytest.mark.skipif(DOVECOT is None, reason="dovecot-imapd is not installed")
USER, PASSWORD = "support", "s3cret"


@pytest.fixture
def dovecot() -> Iterator[int]:
    # Not pytest's tmp_path: that is 0700, and Dovecot's unprivileged processes must read
    # it; a short path also keeps its unix sockets under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="careline-dv-"))
    root.chmod(0o755)
    port = free_port()
    if os.getuid() == 0:  # as root, mail must belong to an unprivileged user
        owner = pwd.getpwnam("dovecot") if _has_user("dovecot") else pwd.getpwnam("nobody")
        uid, gid = owner.pw_uid, owner.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    os.chown(root / "mail", uid, gid)
    os.chown(root / "home", uid, gid)
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (root / "dovecot.conf").write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    if os.getuid() != 0:
        conf = (root / "dovecot.conf").read_text()
        user = pwd.getpwuid(os.getuid()).pw_name
        conf += f"default_login_user = {user}\ndefault_internal_user = {user}\n"
        (root / "dovecot.conf").write_text(conf)
    assert DOVECOT is not None
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")])
    try:
        for _ in range(50):
            try:
                imaplib.IMAP4("127.0.0.1", port).logout()
                break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _append(port: int, raw: bytes) -> None:
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(USER, PASSWORD)
    m.append("INBOX", None, None, raw)
    m.logout()


def _flags(port: int) -> list[bytes]:
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(USER, PASSWORD)
    m.select("INBOX", readonly=True)
    _, data = m.fetch("1:*", "(FLAGS)")
    m.logout()
    return [d for d in data if isinstance(d, bytes)]


def _poller(rt: Runtime, port: int, **kw: float) -> ImapPoller:
    return ImapPoller(rt, imap_config(f"imap://{USER}:{PASSWORD}@127.0.0.1:{port}/INBOX"), **kw)  # type: ignore[arg-type]


async def test_ingests_unseen_then_flags_seen(email_rt: Runtime, dovecot: int) -> None:
    _append(dovecot, mail())
    _append(dovecot, b"Subject: nobody to answer\r\n\r\nhello\r\n")
    poller = _poller(email_rt, dovecot)
    try:
        assert await poller.run_once() == 2
        assert await poller.run_once() == 0  # nothing unseen any more
    finally:
        await poller.close()
    async with email_rt.db.session() as s:
        ids = list(await s.scalars(select(Message.external_id).where(Message.direction == "in")))
    assert ids == ["m1@correo.example"]
    flags = _flags(dovecot)
    assert b"\\Seen" in flags[0]
    assert REJECTED_KEYWORD.encode() not in flags[0]
    assert b"\\Seen" in flags[1]
    assert REJECTED_KEYWORD.encode() in flags[1]


async def test_not_flagged_when_the_transaction_fails(
    email_rt: Runtime, dovecot: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(dovecot, mail())

    async def down(*_a: object, **_k: object) -> None:
        raise Unavailable("the database is unavailable; retry later")

    monkeypatch.setattr("channels.email.imap.receive", down)
    poller = _poller(email_rt, dovecot)
    try:
        with pytest.raises(Unavailable):
            await poller.run_once()
    finally:
        await poller.close()
    assert b"\\Seen" not in _flags(dovecot)[0]  # read again next round; de-dup makes it safe
    monkeypatch.undo()
    poller = _poller(email_rt, dovecot)
    try:
        assert await poller.run_once() == 1
    finally:
        await poller.close()


async def test_idle_wakes_on_new_mail(email_rt: Runtime, dovecot: int) -> None:
    poller = _poller(email_rt, dovecot, idle_s=30)
    stop = asyncio.Event()
    try:
        assert await poller.run_once() == 0
        assert poller._imap.has_capability("IDLE")
        waiting = asyncio.create_task(poller.wait_for_mail(stop))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(_append, dovecot, mail())
        await asyncio.wait_for(waiting, 10)  # woken by the server's EXISTS push, not a timer
        assert await poller.run_once() == 1
    finally:
        stop.set()
        await poller.close()
