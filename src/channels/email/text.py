"""Pure text helpers for mail bodies: HTML to plain text, and the customer's new words apart
from quoted earlier replies and signatures. No I/O; every function is total (never raises on
odd input), because mail is whatever senders' clients produced."""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_TEXT_CHARS = 200_000

# Content of these elements is never text the customer meant us to read.
_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "object"})
_BLOCK = frozenset(
    {
        "p", "div", "tr", "table", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "section", "article", "header", "footer", "address",
        "dl", "dt", "dd", "center", "form", "fieldset", "figure", "main", "nav", "aside",
    }
)  # fmt: skip
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "wbr"})


class _TextExtractor(HTMLParser):
    """Collects visible text as lines, each remembering its `<blockquote>` depth so quoted
    replies in HTML mail become `> ` lines that `strip_reply` recognises like plain text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self._buf: list[str] = []
        self._skip = 0
        self._quote = 0
        self._pre = 0
        self._line_quote = 0
        self._href: list[str | None] = []
        self._size = 0

    def _flush(self) -> None:
        text = "".join(self._buf)
        if not self._pre:
            text = re.sub(r"[ \t\r\f\v\u00a0]+", " ", text).strip()
        self.lines.append((self._line_quote, text))
        self._buf = []
        self._line_quote = self._quote

    def _emit(self, text: str) -> None:
        if self._size > MAX_TEXT_CHARS:
            return
        if not self._buf:
            self._line_quote = self._quote
        self._buf.append(text)
        self._size += len(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self._skip += 1
            return
        if self._skip:
            return
        if tag == "br":
            self._flush()
        elif tag in _BLOCK:
            if self._buf:
                self._flush()
            if tag == "blockquote":
                self._quote += 1
                self._line_quote = self._quote
            elif tag == "pre":
                self._pre += 1
            elif tag == "li":
                self._emit("- ")
            elif tag == "hr":
                self.lines.append((self._quote, "----"))
        elif tag == "a":
            self._href.append(dict(attrs).get("href"))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._emit(f"[{alt}]")
        elif tag in ("td", "th"):
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag in _BLOCK:
            if self._buf:
                self._flush()
            if tag == "blockquote":
                self._quote = max(0, self._quote - 1)
                self._line_quote = self._quote
            elif tag == "pre":
                self._pre = max(0, self._pre - 1)
        elif tag == "a" and self._href:
            href = self._href.pop()
            shown = "".join(self._buf)
            # Keep a link's target when it is not already the visible text: agents need it.
            if href and href.startswith(("http://", "https://")) and href not in shown:
                self._emit(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            parts = data.split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._flush()
                self._emit(part)
        else:
            self._emit(data)

    def text(self) -> str:
        if self._buf:
            self._flush()
        out: list[str] = []
        for depth, line in self.lines:
            if depth and line:
                out.append("> " * depth + line)
            else:
                out.append(line)
        return collapse_blank_lines("\n".join(out))


def html_to_text(html: str) -> str:
    """Visible text of an HTML body. Never renders, fetches or executes anything: scripts,
    styles and remote resources are dropped, links are shown as `text <url>`."""
    parser = _TextExtractor()
    try:
        parser.feed(html[: MAX_TEXT_CHARS * 5])
        parser.close()
    except Exception:  # HTMLParser is lenient; this guards against a library edge case only
        pass
    return parser.text()


def collapse_blank_lines(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- quoted replies and signatures ---------------------------------------------------------

_ATTRIBUTION = re.compile(
    r"""^(
        on\s.{1,250}\swrote:
      | el\s.{1,250}\sescribi[oó]:
      | (?=.*[\d@]).{1,250}\s(пишет|написал|написала|написал\(а\)|писал|писала):
      | .{0,200}\sот\s.{1,200}<[^>]+@[^>]+>:
      | le\s.{1,250}\sa\s[ée]crit\s?:
      | am\s.{1,250}\sschrieb\s.{0,100}:
      | \d{1,4}[./-]\d{1,2}[./-]\d{1,4}.{0,120}(<[^>]+@[^>]+>|wrote|escribió|пишет|написал).{0,40}:
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|mensaje original|исходное сообщение|"
    r"message d'origine|ursprüngliche nachricht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(from|de|от|von)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(sent|date|enviado|fecha|отправлено|дата|gesendet|to|para|кому|subject|asunto|"
    r"тема)\s*:", re.IGNORECASE
)  # fmt: skip
_FORWARD = re.compile(
    r"(forwarded message|begin forwarded message|mensaje reenviado|"
    r"пересылаемое сообщение|переадресованное сообщение|message transféré)",
    re.IGNORECASE,
)
_OUTLOOK_RULE = re.compile(r"^\s*_{20,}\s*$")
_MOBILE_SIG = re.compile(
    r"^\s*(sent from my |sent from mobile|get outlook for |enviado desde mi |"
    r"enviado desde |отправлено с |отправлено из |sent via )",
    re.IGNORECASE,
)


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _quote_start(lines: list[str]) -> int | None:
    """Index of the line where the quoted previous message begins, if any."""
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if _FORWARD.search(line):
            # What follows a forward marker is what the customer wants us to read.
            return None
        if _ATTRIBUTION.match(line):
            return i
        # Clients wrap a long attribution: "On <date>, <name> <addr>" / "wrote:".
        nxt_line = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if (
            nxt_line.endswith(":")
            and len(nxt_line) <= 60
            and _ATTRIBUTION.match(f"{line} {nxt_line}")
        ):
            return i
        if _ORIGINAL.match(line):
            return i
        nxt = [ln for ln in lines[i + 1 : i + 5] if ln.strip()]
        if _OUTLOOK_RULE.match(line) and nxt and _HEADER_FROM.match(nxt[0]):
            return i
        if _HEADER_FROM.match(line) and i > 0 and any(_HEADER_NEXT.match(n) for n in nxt[:3]):
            return i
    return None


def strip_reply(text: str) -> str:
    """The new part of a reply: without the quoted earlier message and the signature.

    Conservative: a forwarded message is kept, inline answers between quotes are kept, and
    when stripping would leave nothing the whole text is returned (the original is always
    kept elsewhere, so an imperfect cut loses nothing).
    """
    full = collapse_blank_lines(normalise_newlines(text))
    lines = full.split("\n")

    cut = _quote_start(lines)
    if cut is not None:
        lines = lines[:cut]
    # A trailing block of `>` lines (top-posting without an attribution line).
    end = len(lines)
    while end > 0 and (not lines[end - 1].strip() or _is_quote(lines[end - 1])):
        end -= 1
    if any(_is_quote(ln) for ln in lines[end:]):
        lines = lines[:end]
    # A leading block of `>` lines (bottom-posting).
    start = 0
    while start < len(lines) and (not lines[start].strip() or _is_quote(lines[start])):
        start += 1
    if any(_is_quote(ln) for ln in lines[:start]):
        lines = lines[start:]
    lines = _strip_signature(lines)

    result = collapse_blank_lines("\n".join(lines))
    return result or full


def _strip_signature(lines: list[str]) -> list[str]:
    # RFC 3676 delimiter "-- "; many clients trim it to "--". Only near the end, so a "--"
    # used as punctuation in a long message does not cut it.
    for i in range(len(lines) - 1, max(-1, len(lines) - 16), -1):
        if lines[i] in ("-- ", "--") and i > 0:
            return lines[:i]
    tail = [i for i, ln in enumerate(lines) if ln.strip()][-3:]
    for i in tail:
        if _MOBILE_SIG.match(lines[i]) and i > 0:
            return lines[:i]
    return lines
