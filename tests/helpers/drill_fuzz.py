"""Bodies for the bad-input drill, and the rule every answer to them must follow.

Bodies start from a real update of each platform and are bent by hypothesis: fields replaced by
values of the wrong type, removed, made huge or nested thousands deep, the JSON truncated or
spiked with bytes that are not UTF-8; or they are not updates at all.

The rule (`check_answer`):

* never a 5xx, and only 200 or a 4xx;
* a 4xx writes nothing: every table has the rows it had;
* a 200 may write only what a well-formed but meaningless update from a stranger writes (the
  drill's database has no registered user, so every sender is a stranger): per update, one
  inbound row, the chat's dialog state, its replies (outbox rows keyed `reply:<channel>:<that
  update id>:…`) and, when the text looked like a registration code, the `invite.wrong_code` or
  `invite.rate_limited` audit row. No user, identity, invite, occurrence, report, evidence or
  any other row; at most as many inbound rows as the body has JSON objects.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from sqlmodel import col, func, select

from bot.core.db import Database
from bot.core.models import AuditLog, InboundUpdate, Outbox
from tests.helpers.drill_support import changed, row_counts

MAX_BODY = 1024 * 1024
ALLOWED_ON_200 = {"inbound_updates", "dialog_states", "outbox", "audit_log"}
STRANGER_AUDITS = {"invite.wrong_code", "invite.rate_limited"}
DEEP = "\x00deep:{}\x00"  # a placeholder replaced by real nesting after json.dumps
DEEP_JSON = re.compile(r'"\\u0000deep:(\d+)\\u0000"')

# --------------------------------------------------------------------------- JSON values

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "/start", "/start ABCD2345", "ABCD2345", "xong", "done:1", "menu:viec", "1"]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple) -> Any:
    if not path:
        return doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return doc


@st.composite
def bent(draw: st.DrawFn, skeleton: dict) -> Any:
    """The skeleton with up to four of its parts replaced, removed, made huge or deep."""
    doc = copy.deepcopy(skeleton)
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(st.sampled_from(["replace", "replace", "delete", "huge", "deep"]))
        if action == "delete":
            doc = _delete(doc, path)
        elif action == "huge":
            size = draw(st.sampled_from([4097, 70_000, 400_000]))
            doc = _set(doc, path, draw(st.sampled_from(["x", "Ư", "😀", "A1"])) * size)
        elif action == "deep":
            doc = _set(doc, path, DEEP.format(draw(st.sampled_from([50, 900, 5000, 100_000]))))
        else:
            doc = _set(doc, path, draw(json_values))
        if not isinstance(doc, dict | list):
            break
    return doc


def encode(doc: Any, ascii_only: bool) -> bytes:
    text = json.dumps(doc, ensure_ascii=ascii_only)
    text = DEEP_JSON.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text)
    return text.encode("utf-8")


@st.composite
def spoiled(draw: st.DrawFn, raw: bytes) -> bytes:
    """The encoded body, perhaps truncated or spiked with bytes that are not UTF-8."""
    action = draw(st.sampled_from(["keep", "keep", "keep", "cut", "spike", "bom"]))
    if action == "cut" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if action == "spike":
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80"]))
        return raw[:at] + junk + raw[at:]
    if action == "bom":
        return b"\xef\xbb\xbf" + raw
    return raw


def bodies(skeletons: list | st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Bent updates (most), or anything at all."""
    chosen = skeletons if isinstance(skeletons, st.SearchStrategy) else st.sampled_from(skeletons)
    bent_updates = chosen.flatmap(
        lambda skeleton: st.tuples(bent(skeleton), st.booleans()).map(lambda t: encode(*t))
    )
    nonsense = st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.sampled_from([10, 1000, 200_000]).map(lambda n: b"[" * n + b"]" * n),
        st.sampled_from([10, 1000, 100_000]).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    )
    return st.one_of(bent_updates, bent_updates, bent_updates, nonsense).flatmap(spoiled)


def objects_in(raw: bytes) -> int:
    """How many JSON objects the body holds (0 when it is not JSON)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return 0
    stack, total = [doc], 0
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            total += 1
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total


# --------------------------------------------------------------------------- the rule


@dataclass
class Snapshot:
    counts: dict[str, int]
    last_inbound: int
    last_outbox: int
    last_audit: int


async def snapshot(db: Database) -> Snapshot:
    last = select(
        *(
            select(func.coalesce(func.max(model.id), 0)).scalar_subquery()
            for model in (InboundUpdate, Outbox, AuditLog)
        )
    )
    async with db.session() as session:
        inbound, outbox, audit = (await session.exec(last)).one()
    return Snapshot(await row_counts(db), int(inbound), int(outbox), int(audit))


async def check_answer(
    db: Database, before: Snapshot, status: int, channel: str, raw: bytes, note: str = ""
) -> None:
    where = f"{note} status {status} for body {raw[:160]!r}… ({len(raw)} bytes)"
    assert status < 500, f"server error: {where}"
    assert status == 200 or 400 <= status < 500, f"unexpected status: {where}"
    after = await row_counts(db)
    delta = changed(before.counts, after)
    if status != 200:
        assert delta == {}, f"a refused request wrote {delta}: {where}"
        return
    assert set(delta) <= ALLOWED_ON_200, f"a meaningless update wrote {delta}: {where}"
    async with db.session() as session:
        inbound = (
            await session.exec(
                select(InboundUpdate).where(col(InboundUpdate.id) > before.last_inbound)
            )
        ).all()
        outbox = (
            await session.exec(select(Outbox).where(col(Outbox.id) > before.last_outbox))
        ).all()
        audits = (
            await session.exec(select(AuditLog).where(col(AuditLog.id) > before.last_audit))
        ).all()
    assert len(inbound) <= max(objects_in(raw), 1), f"{len(inbound)} inbound rows: {where}"
    assert all(row.channel == channel for row in inbound), where
    recorded = {row.update_id for row in inbound}
    for row in outbox:
        prefix, _sep, rest = row.idempotency_key.partition(f"reply:{channel}:")
        update_id = rest.rsplit(":", 1)[0]
        assert prefix == "" and update_id in recorded, f"outbox {row.idempotency_key}: {where}"
    assert {row.action for row in audits} <= STRANGER_AUDITS, f"audit {audits}: {where}"
    if not inbound:
        assert delta == {}, f"no update recorded, yet {delta} written: {where}"
