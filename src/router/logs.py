"""JSON logs. Only ids and metadata are ever passed to the logger; this formatter also drops
any `extra` field whose name suggests content or secrets, as a second line of defence."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import IO

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
_FORBIDDEN = ("text", "body", "token", "secret", "password", "authorization", "content")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STD or key.startswith("_") or key in ("message", "asctime", "color_message"):
                continue
            if any(word in key.lower() for word in _FORBIDDEN):
                continue
            out[key] = value if isinstance(value, (int, float, bool, type(None))) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


# Libraries that log SQL parameters (message text) or request URLs (a Telegram bot token is
# part of its URL) at DEBUG/INFO. Their records pass only at WARNING and above.
_CHATTY = (
    "aiosqlite",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "asyncpg",
    "httpx",
    "httpcore",
    "aiogram",
    "uvicorn.access",
    "aiosmtplib",
    # SSE chunks (routing reasons quote the patient) and WebSocket frames at DEBUG.
    "sse_starlette",
    "websockets",
)
# uvicorn logs every WebSocket frame's content to "uvicorn.error" at DEBUG; its INFO and
# above (start-up, shutdown, errors) carry no content and stay.
_FRAMES = "uvicorn.error"


class PrivacyFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if record.levelno < logging.INFO and record.name == _FRAMES:
            return False
        return not any(record.name == n or record.name.startswith(n + ".") for n in _CHATTY)


def configure(level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PrivacyFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log prints query strings (web chat tokens live there): keep it quiet.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return handler
