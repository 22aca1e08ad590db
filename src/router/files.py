"""Attachment file store: bytes on disk, a reference in the database (never the bytes).

Content-addressed (`email-store:<sha256>`): a redelivered message writes nothing new, two
copies of the same file share one blob, and a reference can never name a path outside the
store. Writes are atomic (temporary file, then rename), so a crash leaves no half file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

SCHEME = "email-store:"
_REF = re.compile(r"^email-store:([0-9a-f]{64})$")
DEFAULT_DIR = "./var/attachments"


class AttachmentStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings: Any) -> AttachmentStore:
        # `email_store_dir` is proposed for Settings; until it exists the default applies.
        return cls(getattr(settings, "email_store_dir", None) or DEFAULT_DIR)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return SCHEME + digest

    def path(self, ref: str) -> Path:
        match = _REF.match(ref)
        if match is None:
            raise ValueError("not an email-store reference")
        return self._path(match[1])

    def get(self, ref: str) -> bytes:
        return self.path(ref).read_bytes()

    @staticmethod
    def owns(ref: str) -> bool:
        return _REF.match(ref) is not None

    async def aput_many(self, blobs: list[bytes]) -> list[str]:
        """Write off the event loop (disk I/O blocks)."""
        return await asyncio.to_thread(lambda: [self.put(b) for b in blobs])
