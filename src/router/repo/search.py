"""Full-text search over message texts, subjects and contacts (names and identities).

Indexing happens in one place, the session class (`IndexingSession`): an `after_flush` hook
notes every message, subject and contact a flush wrote, and a `before_commit` hook writes
their index rows once, in the same transaction, from what the database then holds. Whatever
path stores a message (any channel's ingest, a reply, a note, an acknowledgement, an edit)
makes it searchable, and a rolled-back savepoint takes its index rows with it.

- PostgreSQL: `tsvector` per document with the language's own configuration (`spanish`,
  `russian`, `english`; `simple` for contacts and unknown languages). Accent folding is
  `textnorm.normalise` applied in Python and indexed next to the original: the Snowball
  stemmers know accented suffixes ("medicación" → "medic") that a folded word lacks
  ("medicacion" → "medicacion"), so folding first (the `unaccent` way) would lose inflections.
  It also needs no extension (`unaccent` is a per-database CREATE the service account may
  not have).
- SQLite: an FTS5 table of the same stems, computed in Python by `textnorm.stem_forms` (the
  Snowball stemmers routing already uses), ranked with bm25.

Visibility is the conversation list's (`access.visible_conversations`): a hit is returned
only when its conversation is readable by the caller; a contact hit only when the caller may
read the contact (`access.require_visible_contact`'s rule).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    cast,
    column,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.attributes import get_history

from models import Contact, ContactIdentity, Conversation, Message, SearchDocument
from router.auth import Principal
from router.decide import textnorm
from router.errors import InvalidInput
from router.repo import access
from router.repo.cursor import decode_cursor

MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 12
MAX_OFFSET = 1000  # ranked paging goes this deep; refine the query beyond
# Index at most this much of one text: cost per message stays bounded whatever its length.
MAX_INDEXED_CHARS = 20_000
STEM_LANGS = ("es", "ru", "en")
PG_CONFIGS = {"es": "spanish", "ru": "russian", "en": "english"}
SORTS = ("relevance", "-created_at", "created_at")
_WORD = re.compile(r"[^\W_]+")
_fts = table("search_fts", column("rowid"), column("terms"))
_docs: Table = SearchDocument.__table__  # type: ignore[assignment]


# --- what goes into the index -------------------------------------------------------------


def _words(value: str) -> list[str]:
    return [w[: textnorm.MAX_TOKEN_LEN] for w in _WORD.findall(value[:MAX_INDEXED_CHARS])]


def doc_terms(value: str, language: str | None) -> str:
    """SQLite terms of a text: each word's folded form and its stems (accented and folded)
    in the text's language, or in every stemmed language when it is unknown."""
    langs = (language,) if language in STEM_LANGS else STEM_LANGS
    terms: dict[str, None] = {}
    for w in _words(value):
        terms[textnorm.normalise(w)] = None
        for lang in langs:
            for s in textnorm.stem_forms(w, lang):
                terms[s] = None
    return " ".join(terms)


def _pg_config(language: str | None) -> str:
    return PG_CONFIGS.get(language or "", "simple")


@dataclass
class _Batch:
    """Index rows to insert, written with one executemany per table (not two statements per
    document): an ingest indexes the message, its acknowledgement and maybe a new contact."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        *,
        kind: str,
        value: str,
        language: str | None,
        created_at: datetime,
        conversation_id: int | None = None,
        message_id: int | None = None,
        contact_id: int | None = None,
    ) -> None:
        if value.strip():
            self.rows.append(
                {
                    "kind": kind,
                    "conversation_id": conversation_id,
                    "message_id": message_id,
                    "contact_id": contact_id,
                    "language": language,
                    "created_at": created_at,
                    "value": value[:MAX_INDEXED_CHARS],
                }
            )

    def run(self, conn: Connection) -> None:
        if not self.rows:
            return
        cols = ("kind", "conversation_id", "message_id", "contact_id", "language", "created_at")
        if conn.dialect.name == "postgresql":
            cfg = cast(bindparam("p_cfg"), REGCONFIG)
            stmt = insert(_docs).values(
                {c: bindparam(f"p_{c}") for c in cols}
                | {
                    "tsv": func.to_tsvector(cfg, bindparam("p_value")).op("||")(
                        func.to_tsvector(cfg, bindparam("p_folded"))
                    )
                }
            )
            conn.execute(
                stmt,
                [
                    {f"p_{c}": r[c] for c in cols}
                    | {
                        "p_cfg": _pg_config(r["language"]),
                        "p_value": r["value"],
                        "p_folded": textnorm.normalise(r["value"]),
                    }
                    for r in self.rows
                ],
            )
        else:
            ids = (
                conn.execute(
                    insert(_docs).returning(_docs.c.id, sort_by_parameter_order=True),
                    [{c: r[c] for c in cols} for r in self.rows],
                )
                .scalars()
                .all()
            )
            conn.execute(
                insert(_fts),
                [
                    {"rowid": i, "terms": doc_terms(r["value"], r["language"])}
                    for i, r in zip(ids, self.rows, strict=True)
                ],
            )
        self.rows.clear()


def _drop(conn: Connection, where: ColumnElement[bool]) -> None:
    if conn.dialect.name == "sqlite":
        conn.execute(delete(_fts).where(_fts.c.rowid.in_(select(_docs.c.id).where(where))))
    conn.execute(delete(_docs).where(where))


def _changed(obj: object, *attrs: str) -> bool:
    return any(get_history(obj, a).has_changes() for a in attrs)


@dataclass
class _Pending:
    """What this transaction's flushes wrote that the index must follow. Written once, at
    commit (`_apply`): a message is inserted, then gets its language from routing, then more
    flushes follow; indexing per flush did that work two or three times per message."""

    new_messages: set[int] = field(default_factory=set)
    changed_messages: set[int] = field(default_factory=set)
    subjects: set[int] = field(default_factory=set)
    contacts: set[int] = field(default_factory=set)
    new_contacts: set[int] = field(default_factory=set)
    # The objects this unit of work inserted, held (the identity map's references are weak)
    # so that commit indexes them from memory instead of reading them back.
    held: dict[tuple[type, int], object] = field(default_factory=dict)
    inserted: set[tuple[type, int]] = field(default_factory=set)
    new_identities: list[ContactIdentity] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.new_messages or self.changed_messages or self.subjects or self.contacts)


_PENDING = "careline.search.pending"


def _pending(session: Session) -> _Pending:
    p = session.info.get(_PENDING)
    if not isinstance(p, _Pending):
        p = session.info[_PENDING] = _Pending()
    return p


def _collect(session: Session, _flush: UOWTransaction) -> None:
    p = _pending(session)
    for obj in session.new:
        if isinstance(obj, (Message, Conversation, Contact)):
            p.inserted.add((type(obj), obj.id))
        if isinstance(obj, Message):
            p.new_messages.add(obj.id)
            p.held[(Message, obj.id)] = obj
        elif isinstance(obj, Conversation):
            p.held[(Conversation, obj.id)] = obj
            if obj.subject:
                p.subjects.add(obj.id)
        elif isinstance(obj, Contact):
            p.new_contacts.add(obj.id)
            p.contacts.add(obj.id)
            p.held[(Contact, obj.id)] = obj
        elif isinstance(obj, ContactIdentity):
            p.contacts.add(obj.contact_id)
            p.new_identities.append(obj)
    for obj in session.dirty:
        if isinstance(obj, Conversation):
            p.held[(Conversation, obj.id)] = obj  # its language, for its new messages' rows
        if isinstance(obj, Message) and _changed(obj, "text", "language"):
            p.changed_messages.add(obj.id)
        elif isinstance(obj, Conversation) and _changed(obj, "subject", "language"):
            if obj.subject or get_history(obj, "subject").deleted:
                p.subjects.add(obj.id)
        elif isinstance(obj, Contact) and _changed(obj, "name", "merged_into_id"):
            # A merge moves identities with a bulk UPDATE before it marks the tombstone, so
            # both contacts are re-read at commit, after the move.
            p.contacts.update(i for i in (obj.id, obj.merged_into_id) if i is not None)
        elif isinstance(obj, ContactIdentity) and _changed(obj, "contact_id", "value"):
            hist = get_history(obj, "contact_id")
            p.contacts.update(i for i in (*hist.deleted, obj.contact_id) if i is not None)
    for obj in session.deleted:
        if isinstance(obj, ContactIdentity):
            p.contacts.add(obj.contact_id)


def _apply(session: Session) -> None:
    """Before a commit: write the index rows of what is pending,
    read back from the database, so a rolled-back savepoint's rows are simply not found."""
    session.flush()
    p = session.info.pop(_PENDING, None)
    if not p:
        return
    conn = session.connection()
    batch = _Batch()
    messages = p.new_messages | p.changed_messages
    if messages:
        # Only a message indexed by an earlier transaction can have rows to replace.
        stale = p.changed_messages - p.new_messages
        if stale:
            _drop(conn, _docs.c.message_id.in_(sorted(stale)))
        # What this unit of work still holds is indexed from memory; only the rest is read.
        unread = _messages_from_memory(p, session, sorted(messages), batch)
        if unread:
            mt = Message.__table__
            _add_messages(batch, conn.execute(_message_rows().where(mt.c.id.in_(unread))))
    if p.subjects:
        ids = sorted(p.subjects)
        _drop(conn, and_(_docs.c.kind == "subject", _docs.c.conversation_id.in_(ids)))
        cv = Conversation.__table__
        rows: list[Any] = []
        unread = []
        for cid in ids:
            conv = _held(p, session, Conversation, cid, "subject", "language", "created_at")
            if conv is None:
                unread.append(cid)
            else:
                rows.append(conv)
        if unread:
            rows += conn.execute(
                select(cv.c.id, cv.c.subject, cv.c.language, cv.c.created_at).where(
                    cv.c.id.in_(unread)
                )
            ).all()
        for c in rows:
            if c.subject:
                batch.add(
                    kind="subject",
                    value=c.subject,
                    language=c.language,
                    created_at=c.created_at,
                    conversation_id=c.id,
                )
    if p.contacts:
        # A contact created in this unit of work, with the identities it created: from memory.
        fresh = [
            c for c in sorted(p.new_contacts) if _fresh_contact_from_memory(p, session, c, batch)
        ]
        rest = sorted(p.contacts - set(fresh))
        if rest:
            _index_contacts(conn, rest, batch, fresh=p.new_contacts)
    batch.run(conn)


def _held(p: _Pending, session: Session, model: type, pk: int, *attrs: str) -> Any | None:
    """The values of `attrs` of `model` row `pk` if this session holds it persistent with
    them in memory, else None (a row a rolled-back savepoint inserted is no longer persistent:
    never indexed). An attribute this unit of work never set on a row it inserted, on a
    column without defaults, is NULL."""
    obj = p.held.get((model, pk))
    if obj is None:
        obj = session.identity_map.get(inspect(model).identity_key_from_primary_key((pk,)))
    if obj is None:
        return None
    state = inspect(obj)
    if not state.persistent:
        return None
    inserted = (model, pk) in p.inserted
    values: dict[str, Any] = {}
    for a in attrs:
        if a in state.dict:
            values[a] = state.dict[a]
        elif inserted and a in _NULL_UNLESS_SET.get(model, ()):
            values[a] = None
        else:
            return None
    return SimpleNamespace(id=pk, **values)


# Columns without a default: a row inserted without them holds NULL there.
_NULL_UNLESS_SET: dict[type, frozenset[str]] = {
    Message: frozenset({"language"}),
    Conversation: frozenset({"language", "subject"}),
    Contact: frozenset({"name", "merged_into_id"}),
}


def _messages_from_memory(
    p: _Pending, session: Session, ids: Sequence[int], batch: _Batch
) -> list[int]:
    """Index the messages this session holds (with their conversation, for the language);
    returns the ids it could not."""
    unread: list[int] = []
    for mid in ids:
        m = _held(p, session, Message, mid, "text", "language", "created_at", "conversation_id")
        conv = m and _held(p, session, Conversation, m.conversation_id, "language")
        if m is None or conv is None:
            unread.append(mid)
            continue
        batch.add(
            kind="message",
            value=m.text,
            language=m.language or conv.language,
            created_at=m.created_at,
            conversation_id=m.conversation_id,
            message_id=mid,
        )
    return unread


def _fresh_contact_from_memory(
    p: _Pending, session: Session, contact_id: int, batch: _Batch
) -> bool:
    contact = _held(p, session, Contact, contact_id, "name", "created_at", "merged_into_id")
    if contact is None or contact.merged_into_id is not None:
        return False
    idents = [
        o.value for o in p.new_identities if inspect(o).persistent and o.contact_id == contact_id
    ]
    batch.add(
        kind="contact",
        value=_contact_text(contact.name, idents),
        language=None,
        created_at=contact.created_at,
        contact_id=contact_id,
    )
    return True


def _contact_text(name: str | None, idents: Sequence[str]) -> str:
    # Phone numbers also as digits only: "+34 600…" and "34600…" both find them.
    digits = [re.sub(r"\D", "", v) for v in idents if v.startswith("+")]
    return " ".join([name or "", *idents, *digits])


def _index_contacts(
    conn: Connection, ids: Sequence[int], batch: _Batch, *, fresh: Iterable[int] = ()
) -> None:
    """Re-read these contacts (name and identities) into `batch`; `fresh` ones (created in
    this transaction) have no rows to replace."""
    stale = sorted(set(ids) - set(fresh))
    if stale:
        _drop(conn, and_(_docs.c.kind == "contact", _docs.c.contact_id.in_(stale)))
    ct = Contact.__table__
    it = ContactIdentity.__table__
    names = {
        r.id: (r.name, r.created_at)
        for r in conn.execute(select(ct.c.id, ct.c.name, ct.c.created_at).where(ct.c.id.in_(ids)))
    }
    values: dict[int, list[str]] = {}
    for r in conn.execute(select(it.c.contact_id, it.c.value).where(it.c.contact_id.in_(ids))):
        values.setdefault(r.contact_id, []).append(r.value)
    for cid, (name, created_at) in names.items():
        batch.add(
            kind="contact",
            value=_contact_text(name, values.get(cid, [])),
            language=None,
            created_at=created_at,
            contact_id=cid,
        )


class IndexingSession(Session):
    """The service's session class: each commit indexes what its flushes wrote."""


def _apply_at_commit(session: Session) -> None:
    """Only the transaction's own commit indexes, not each savepoint's release: a group
    commit's batch then writes its units' index rows in one statement, not one per unit.
    What a rolled-back savepoint inserted is no longer persistent, and is read back as
    not found, so nothing of it is indexed."""
    if not session.in_nested_transaction():
        _apply(session)


event.listen(IndexingSession, "after_flush", _collect)
event.listen(IndexingSession, "before_commit", _apply_at_commit)


async def forget(
    session: AsyncSession, conversation_ids: Sequence[int], contact_ids: Sequence[int]
) -> int:
    """Erasure: drop every index row of these conversations and contacts. Returns how many."""
    await session.run_sync(_apply)  # what this transaction wrote first, then drop it all
    where = or_(
        _docs.c.conversation_id.in_(list(conversation_ids)),
        _docs.c.contact_id.in_(list(contact_ids)),
    )
    n = int(await session.scalar(select(func.count()).select_from(_docs).where(where)) or 0)
    await session.run_sync(lambda s: _drop(s.connection(), where))
    return n


async def backfill(session: AsyncSession) -> None:
    """Index everything already stored (tests of the migration's backfill use it too)."""
    await session.run_sync(lambda s: backfill_sync(s.connection()))


def _message_rows() -> Select[Any]:
    """What a message's index row needs. Replies and notes have no language of their own:
    they are indexed in the conversation's."""
    mt, cv = Message.__table__, Conversation.__table__
    return select(
        mt.c.id,
        mt.c.conversation_id,
        mt.c.text,
        func.coalesce(mt.c.language, cv.c.language).label("language"),
        mt.c.created_at,
    ).join(cv, cv.c.id == mt.c.conversation_id)


def _add_messages(batch: _Batch, rows: Iterable[Any]) -> None:
    for r in rows:
        batch.add(
            kind="message",
            value=r.text,
            language=r.language,
            created_at=r.created_at,
            conversation_id=r.conversation_id,
            message_id=r.id,
        )


def backfill_sync(conn: Connection) -> None:
    """Used by migration 0007: index every stored message, subject and contact, in batches."""
    mt = Message.__table__
    batch = _Batch()
    last = 0
    while True:
        rows = conn.execute(
            _message_rows()
            .where(mt.c.id > last, mt.c.text != "", mt.c.text != "[erased]")
            .order_by(mt.c.id)
            .limit(500)
        ).all()
        if not rows:
            break
        _add_messages(batch, rows)
        batch.run(conn)
        last = rows[-1].id
    cv = Conversation.__table__
    subjects = conn.execute(
        select(cv.c.id, cv.c.subject, cv.c.language, cv.c.created_at).where(
            cv.c.subject.is_not(None)
        )
    ).all()
    for s in subjects:
        batch.add(
            kind="subject",
            value=s.subject,
            language=s.language,
            created_at=s.created_at,
            conversation_id=s.id,
        )
    batch.run(conn)
    ids = [r[0] for r in conn.execute(select(Contact.__table__.c.id)).all()]
    for i in range(0, len(ids), 500):
        _index_contacts(conn, ids[i : i + 500], batch)
        batch.run(conn)


# --- querying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    kind: str
    conversation_id: int | None
    message_id: int | None
    contact_id: int | None
    created_at: datetime
    score: float


def query_words(q: str) -> list[str]:
    words = _words(q)
    if not q.strip() or not words:
        raise InvalidInput("q must contain at least one word")
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is longer than {MAX_QUERY_CHARS} characters")
    if len(words) > MAX_QUERY_WORDS:
        raise InvalidInput(f"q has more than {MAX_QUERY_WORDS} words")
    return words


def fts_query(words: Iterable[str]) -> str:
    """An FTS5 MATCH expression: every word, each as any of its forms (folded, stems)."""
    groups = []
    for w in words:
        forms = {textnorm.normalise(w)}
        for lang in STEM_LANGS:
            forms |= textnorm.stem_forms(w, lang)
        groups.append("(" + " OR ".join(f'"{f}"' for f in sorted(forms) if f) + ")")
    return " AND ".join(groups)


def _pg_query(q: str) -> ColumnElement[Any]:
    """Any language's reading of the query, as typed and accent-folded (constant: GIN-usable)."""
    folded = textnorm.normalise(q)
    parts = [
        func.websearch_to_tsquery(cast(cfg, REGCONFIG), value)
        for cfg in (*PG_CONFIGS.values(), "simple")
        for value in dict.fromkeys((q, folded))
    ]
    combined: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        combined = combined.op("||")(part)
    return combined


def decode_offset(cursor: str | None) -> int:
    offset = decode_cursor(cursor) or 0
    if offset > MAX_OFFSET:
        raise InvalidInput(f"search pages stop at {MAX_OFFSET} results; refine the query")
    return offset


async def search(
    session: AsyncSession,
    p: Principal,
    q: str,
    *,
    kinds: Sequence[str] = ("message", "subject", "contact"),
    sort: str = "relevance",
    offset: int = 0,
    limit: int = 20,
) -> tuple[list[Hit], int | None]:
    """One page of hits the caller may read, and the next page's offset (None at the end)."""
    words = query_words(q)
    dialect = session.get_bind().dialect.name
    d = SearchDocument
    visible_conv = d.conversation_id.in_(
        select(Conversation.id).where(await access.visible_conversations(session, p))
    )
    if p.max_tier >= 2:
        visible_contact: ColumnElement[bool] = d.kind == "contact"
    else:
        visible_contact = and_(
            d.kind == "contact",
            exists(
                select(1).where(
                    Conversation.contact_id == d.contact_id,
                    await access.visible_conversations(session, p),
                )
            ),
        )
    if dialect == "postgresql":
        tsq = _pg_query(q)
        score: ColumnElement[Any] = func.ts_rank_cd(d.tsv, tsq)
        stmt = select(d, score.label("score")).where(d.tsv.op("@@")(tsq))
    else:
        score = -func.bm25(literal_column("search_fts"))
        stmt = (
            select(d, score.label("score"))
            .join(_fts, _fts.c.rowid == d.id)
            .where(text("search_fts MATCH :fq").bindparams(fq=fts_query(words)))
        )
    stmt = stmt.where(d.kind.in_(list(kinds)), or_(visible_conv, visible_contact))
    if sort == "relevance":
        stmt = stmt.order_by(score.desc(), d.id.desc())
    elif sort == "-created_at":
        stmt = stmt.order_by(d.created_at.desc(), d.id.desc())
    else:
        stmt = stmt.order_by(d.created_at, d.id)
    rows = (await session.execute(stmt.offset(offset).limit(limit + 1))).all()
    hits = [
        Hit(
            kind=doc.kind,
            conversation_id=doc.conversation_id,
            message_id=doc.message_id,
            contact_id=doc.contact_id,
            created_at=doc.created_at,
            score=float(s or 0.0),
        )
        for doc, s in rows[:limit]
    ]
    more = len(rows) > limit and offset + limit < MAX_OFFSET
    return hits, (offset + limit if more else None)


def excerpt(value: str, words: Sequence[str], width: int = 160) -> str:
    """A window of the text around the first word of the query that occurs in it."""
    folded = textnorm.normalise(value)
    at = -1
    for w in words:
        stem = textnorm.normalise(w)[: max(3, len(w) - 3)]
        at = folded.find(stem)
        if at >= 0:
            break
    start = max(0, at - width // 3) if at >= 0 else 0
    cut = value[start : start + width]
    return ("…" if start else "") + cut + ("…" if start + width < len(value) else "")
