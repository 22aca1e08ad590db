"""A stand-in Telegram Bot API server on 127.0.0.1, for aiogram's real HTTP client.

It speaks the Bot API wire format (`POST /bot<token>/<method>` with form fields, answers
`{"ok": ..., "result": ...}` or `{"ok": false, "error_code", "description", "parameters"}`,
files at `GET /file/bot<token>/<path>`), records every call, and can be scripted to fail.
aiohttp's server parses both url-encoded and multipart forms, which aiogram sends.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.server import serve_aiohttp


@dataclass
class Call:
    method: str
    token: str
    params: dict[str, str]

    def json(self, key: str) -> Any:
        return json.loads(self.params[key])


@dataclass
class Failure:
    status: int
    description: str
    retry_after: int | None = None
    after: int = 0  # let this many calls succeed first


@dataclass
class StoredFile:
    content: bytes
    path: str


@dataclass
class FakeBotAPI:
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    base: str = ""
    _next_message_id: int = 5000
    _runner: web.AppRunner | None = None

    # -- scripting -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        after: int = 0,
    ) -> None:
        """The next call of `method` (or the one after `after` successes) answers with this
        error; queue several for several."""
        self.failures.setdefault(method.lower(), []).append(
            Failure(status, description, retry_after, after)
        )

    def add_file(self, file_id: str, content: bytes, path: str) -> None:
        self.files[file_id] = StoredFile(content, path)

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    # -- server ----------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner, self.base = await serve_aiohttp(app)
        return self.base

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = await request.post()
        params = {
            k: v if isinstance(v, str) else getattr(v, "filename", "") for k, v in form.items()
        }
        self.calls.append(Call(method, request.match_info["token"], params))
        queued = self.failures.get(method.lower())
        if queued and queued[0].after > 0:
            queued[0].after -= 1
        elif queued:
            f = queued.pop(0)
            body: dict[str, Any] = {
                "ok": False,
                "error_code": f.status,
                "description": f.description,
            }
            if f.retry_after is not None:
                body["parameters"] = {"retry_after": f.retry_after}
            return web.json_response(body, status=f.status)
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return web.json_response({"ok": True, "result": True})
        result = handler(params)
        if isinstance(result, web.Response):
            return result
        if asyncio.iscoroutine(result):
            result = await result
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.downloads.append(path)
        for f in self.files.values():
            if f.path == path:
                return web.Response(body=f.content, content_type="application/octet-stream")
        return web.Response(status=404, text="Not Found")

    # -- methods ---------------------------------------------------------------------------

    def _message(self, params: dict[str, str], **content: Any) -> dict[str, Any]:
        self._next_message_id += 1
        return {
            "message_id": self._next_message_id,
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private", "first_name": "Customer"},
            "from": {"id": 1, "is_bot": True, "first_name": "Careline", "username": "careline_bot"},
            **content,
        }

    def _m_getme(self, _params: dict[str, str]) -> dict[str, Any]:
        return {"id": 1, "is_bot": True, "first_name": "Careline", "username": "careline_bot"}

    def _m_sendmessage(self, params: dict[str, str]) -> dict[str, Any]:
        return self._message(params, text=params.get("text", ""))

    def _m_sendphoto(self, params: dict[str, str]) -> dict[str, Any]:
        photo = {"file_id": params["photo"], "file_unique_id": "u", "width": 1, "height": 1}
        return self._message(params, photo=[photo])

    def _m_senddocument(self, params: dict[str, str]) -> dict[str, Any]:
        return self._message(
            params, document={"file_id": params["document"], "file_unique_id": "u"}
        )

    def _m_getfile(self, params: dict[str, str]) -> dict[str, Any] | web.Response:
        f = self.files.get(params.get("file_id", ""))
        if f is None:
            body = {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
            return web.json_response(body, status=400)
        return {
            "file_id": params["file_id"],
            "file_unique_id": "u-" + params["file_id"],
            "file_size": len(f.content),
            "file_path": f.path,
        }

    async def _m_getupdates(self, params: dict[str, str]) -> list[dict[str, Any]]:
        offset = int(params.get("offset", "0") or 0)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        if not self.updates:
            await asyncio.sleep(0.05)  # a short "long poll", so a polling loop doesn't spin
        return list(self.updates)


PAYLOADS = Path(__file__).resolve().parent.parent / "channels" / "payloads" / "telegram"


def load_update(name: str, **replace: str) -> dict[str, Any]:
    """A stored Update (JSON as Telegram sends it); `replace` substitutes placeholders in
    string values, e.g. `load_update("start_deeplink", TOKEN=token)`."""
    raw = (PAYLOADS / f"{name}.json").read_text(encoding="utf-8")
    for old, new in replace.items():
        raw = raw.replace(old, new)
    data: dict[str, Any] = json.loads(raw)
    return data
