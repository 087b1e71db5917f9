"""The load client of the `inbound` benchmark: Telegram updates POSTed to papibot's webhook at a
fixed offered rate (open loop), and the fake Bot API those updates' photos are fetched from.

Open loop: update k is due at start + k / rate whatever happened to the updates before it, and
its latency runs from that due moment to the end of the response. A server that falls behind
therefore shows its queueing in the latency instead of silently slowing the client down
(coordinated omission). The client's own lateness (how long after its due moment an update
really left) is reported apart, so a saturated client is seen, not mistaken for the server.

The mix, per registered village head, in this order and repeated:

    /viec                   the open tasks (up to five messages into the outbox)
    done:<occurrence id>    a button tap on one of their own open occurrences (a draft report)
    photo                   a small JPEG; papibot calls getFile and downloads it from the fake
    menu:viec               a button tap on the main menu (the task list again)

so a quarter are commands, half button taps and a quarter photos. Consecutive updates go to
different people (k-th update: person k mod N), so one person's updates stay in order as long
as the latency stays under N / rate seconds.

Every loop here is bounded in count (the number of updates) and in time (a deadline).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector

from tests.helpers.fake_telegram import FakeTelegram, SentMessage

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
STEPS = ("viec", "done", "photo", "menu")
CHAT_BASE = 700_000_000


@dataclass
class Person:
    chat_id: int
    occurrence_ids: list[int]  # open occurrences this village head may act on
    turns: int = 0


def small_jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    from PIL import Image

    colour = ((seed * 53) % 256, (seed * 97) % 256, (seed * 193) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


class Updates:
    """Builds the updates; the fake Bot API knows every message, query and file they name, so
    papibot's answerCallbackQuery, editMessageReplyMarkup, getFile and download all succeed."""

    def __init__(self, fake: FakeTelegram, people: list[Person], first_update_id: int) -> None:
        self.fake = fake
        self.people = people
        self.next_id = first_update_id
        self.photos = [fake._store_photo(small_jpeg(seed)) for seed in range(8)]
        for index, person in enumerate(people):
            fake.user(person.chat_id)  # a chat that started the bot: sends to it succeed
            # Start people at different points of the cycle, so that the mix holds from the
            # first second on (not /viec for everyone first); a first photo without a tapped
            # task takes the "which task is it for?" path.
            person.turns = index % len(STEPS)

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _message(self, chat_id: int, **content: Any) -> dict:
        return {
            "message_id": self.fake._new_message_id(chat_id),
            "from": self.fake.user(chat_id),
            "chat": self.fake._chat(chat_id),
            "date": int(time.time()),
            **content,
        }

    def _callback(self, chat_id: int, data: str) -> dict:
        # The message the button was on, as the bot sent it (kept by the fake so that papibot's
        # editMessageReplyMarkup finds it), and a query id the fake expects to be answered.
        markup = {"inline_keyboard": [[{"text": "x", "callback_data": data}]]}
        sent = SentMessage(
            chat_id=chat_id,
            message_id=self.fake._new_message_id(chat_id),
            kind="text",
            text="…",
            reply_markup=markup,
        )
        self.fake._by_id[(chat_id, sent.message_id)] = sent
        query_id = f"{self.fake.bot_id}{self.fake._next_query:08d}"
        self.fake._next_query += 1
        self.fake._queries[query_id] = False
        return {
            "update_id": self._id(),
            "callback_query": {
                "id": query_id,
                "from": self.fake.user(chat_id),
                "message": self.fake._message_json(sent),
                "chat_instance": f"ci{chat_id}",
                "data": data,
            },
        }

    def next(self, k: int) -> tuple[str, dict]:
        person = self.people[k % len(self.people)]
        step = STEPS[person.turns % len(STEPS)]
        person.turns += 1
        chat = person.chat_id
        if step == "viec":
            text = "/viec"
            entities = [{"type": "bot_command", "offset": 0, "length": len(text)}]
            message = self._message(chat, text=text, entities=entities)
            return step, {"update_id": self._id(), "message": message}
        if step == "done":
            occurrence = person.occurrence_ids[
                (person.turns // len(STEPS)) % len(person.occurrence_ids)
            ]
            return step, self._callback(chat, f"done:{occurrence}")
        if step == "photo":
            sizes = self.photos[k % len(self.photos)]
            return step, {"update_id": self._id(), "message": self._message(chat, photo=sizes)}
        return step, self._callback(chat, "menu:viec")


@dataclass
class StepResult:
    offered_rate: float
    planned: int
    latencies_ms: list[float] = field(default_factory=list)  # from the due moment, 200s only
    service_ms: list[float] = field(default_factory=list)  # from the real send, 200s only
    lateness_ms: list[float] = field(default_factory=list)  # client: real send - due moment
    statuses: dict[str, int] = field(default_factory=dict)  # "200", "500", "timeout", …
    by_kind_ms: dict[str, list[float]] = field(default_factory=dict)
    first_due: float = 0.0
    last_done: float = 0.0
    unfinished: int = 0
    update_ids: list[int] = field(default_factory=list)  # answered 200

    @property
    def ok(self) -> int:
        return self.statuses.get("200", 0)

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "200")

    @property
    def achieved_rate(self) -> float:
        span = self.last_done - self.first_due
        return self.ok / span if span > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

        line: dict[str, Any] = {
            "offered_rate": self.offered_rate,
            "updates": self.planned,
            "ok": self.ok,
            "errors": self.errors,
            "statuses": dict(sorted(self.statuses.items())),
            "achieved_rate": round(self.achieved_rate, 1),
            "p50_ms": pct(self.latencies_ms, 0.50),
            "p90_ms": pct(self.latencies_ms, 0.90),
            "p99_ms": pct(self.latencies_ms, 0.99),
            "max_ms": round(max(self.latencies_ms), 1) if self.latencies_ms else None,
            "mean_ms": round(statistics.fmean(self.latencies_ms), 1) if self.latencies_ms else None,
            "service_p99_ms": pct(self.service_ms, 0.99),
            "client_late_p99_ms": pct(self.lateness_ms, 0.99),
            "client_late_max_ms": round(max(self.lateness_ms), 1) if self.lateness_ms else None,
            "by_kind_p50_p99_ms": {
                kind: [pct(values, 0.5), pct(values, 0.99)]
                for kind, values in sorted(self.by_kind_ms.items())
            },
        }
        if self.unfinished:
            line["unfinished"] = self.unfinished
        return line


class LoadClient:
    def __init__(
        self,
        webhook_url: str,
        secret: str,
        updates: Updates,
        connections: int = 100,
        request_timeout: float = 30.0,
    ) -> None:
        self.webhook_url = webhook_url
        self.secret = secret
        self.updates = updates
        self.connections = connections
        self.request_timeout = request_timeout
        self._counter = itertools.count()
        self.sent: list[dict] = []  # every update answered 200 (for the redelivery check)
        self.attempted: list[int] = []  # the update id of every update posted
        self._session: ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        # Telegram itself opens at most 100 connections to a webhook (setWebhook max_connections).
        self._session = ClientSession(
            connector=TCPConnector(limit=self.connections, force_close=False),
            timeout=ClientTimeout(total=self.request_timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, update: dict) -> int:
        assert self._session is not None
        body = json.dumps(update).encode()
        async with self._session.post(
            self.webhook_url,
            data=body,
            headers={SECRET_HEADER: self.secret, "Content-Type": "application/json"},
        ) as response:
            await response.read()
            return response.status

    async def _one(self, result: StepResult, kind: str, update: dict, due: float) -> None:
        started = time.perf_counter()
        self.attempted.append(update["update_id"])
        result.lateness_ms.append((started - due) * 1000)
        try:
            status = str(await self.post(update))
        except TimeoutError:
            status = "timeout"
        except Exception as error:  # noqa: BLE001  (any failure is an error to count)
            status = type(error).__name__
        finished = time.perf_counter()
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == "200":
            latency = (finished - due) * 1000
            result.latencies_ms.append(latency)
            result.service_ms.append((finished - started) * 1000)
            result.by_kind_ms.setdefault(kind, []).append(latency)
            result.update_ids.append(update["update_id"])
            self.sent.append(update)
        result.last_done = max(result.last_done, finished)

    async def run(self, rate: float, seconds: float, grace: float = 30.0) -> StepResult:
        """Offer `rate` updates/s for `seconds`; wait at most `grace` more for the answers."""
        count = max(1, int(rate * seconds))
        result = StepResult(offered_rate=rate, planned=count)
        start = time.perf_counter() + 0.05
        result.first_due = start
        tasks: list[asyncio.Task] = []
        for k in range(count):  # bounded: `count` updates
            due = start + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, update = self.updates.next(next(self._counter))
            tasks.append(asyncio.create_task(self._one(result, kind, update, due)))
        pending = {task for task in tasks if not task.done()}
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=grace)  # bounded in time
        for task in pending:
            task.cancel()
        result.unfinished = len(pending)
        if pending:
            result.statuses["unfinished"] = len(pending)
            await asyncio.gather(*pending, return_exceptions=True)
        return result

    async def redeliver(self, updates: list[dict]) -> dict[str, int]:
        """Send updates again, as Telegram does when it did not see an answer in time."""
        statuses: dict[str, int] = {}
        for update in updates:  # bounded: the given list
            try:
                status = str(await self.post(update))
            except Exception as error:  # noqa: BLE001
                status = type(error).__name__
            statuses[status] = statuses.get(status, 0) + 1
        return statuses
