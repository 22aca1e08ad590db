"""Split long replies at Telegram's message limit, on the most natural boundary available."""

from __future__ import annotations

import re

# Telegram counts the limit in UTF-16 code units after entity parsing, so an emoji outside
# the BMP costs two; we split the plain text (before HTML escaping) by that measure.
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

# Preferred cut points, best first: a paragraph, a line, a sentence end (keeping its closing
# quote or bracket), any whitespace. Group 1 is the separator that is dropped at the cut.
_BOUNDARIES = (
    re.compile(r"(\n\s*\n)"),
    re.compile(r"(\n)"),
    re.compile(r"[.!?…。！？][\"'»”)\]]*(\s+)"),
    re.compile(r"(\s+)"),
)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """The longest prefix of `text` (in code points) that is at most `limit` UTF-16 units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pure: `text` in parts of at most `limit` UTF-16 units, cut on a paragraph, line,
    sentence or word boundary when one exists in the second half of the window (so parts
    don't become tiny), else hard-cut. Whitespace at the cuts is dropped; no part is empty."""
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text.strip()
    while rest:
        end = _fit(rest, limit)
        if end >= len(rest):
            parts.append(rest)
            break
        window = rest[: end + 1]  # a separator right after the window still counts
        cut, resume = end, end
        for pattern in _BOUNDARIES:
            found = [m for m in pattern.finditer(window) if m.start(1) >= end // 2]
            if found:
                cut, resume = found[-1].start(1), found[-1].end(1)
                break
        head = rest[:cut].rstrip()
        if head:
            parts.append(head)
        rest = rest[resume:].lstrip()
    return parts
