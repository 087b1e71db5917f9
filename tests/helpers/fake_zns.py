"""A fake Zalo Notification Service on loopback, as strict as the documented API.

`POST /message/template` with the OA's `access_token` header (the tokens of the FakeZalo it is
given, so a refresh there is seen here) and `{phone, template_id, template_data, tracking_id}`.
Errors come with HTTP 200 and `error != 0`, as Zalo answers them:

* -124 the access token is missing or invalid;
* -108 the phone is not in the 84… form of a Vietnamese mobile number (or listed in
  `invalid_numbers`); -118 no Zalo account on that number (`no_zalo`);
* -109 unknown template; -112 template data that does not match the template's parameters
  (one missing, one extra, one too long, one not a string);
* -139 the person refused this OA's notifications (`refuses`);
* -144 the OA's daily quota is spent (`daily_quota` messages a day on `zalo.clock`);
* `fail_next`: error codes answered to the next sends, in order.

An accepted message gets a `msg_id`; unless its phone is in `undelivered`, the fake then posts
the signed `user_received_message` event (msg_id, tracking_id, delivery_time) to the OA webhook
set with `deliver_to`. `settle()` waits for those posts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

from aiohttp import web

from tests.helpers.fake_zalo import FakeZalo

PHONE = re.compile(r"^84[35789]\d{8}$")


class FakeZNS:
    def __init__(self, zalo: FakeZalo, daily_quota: int = 500) -> None:
        self.zalo = zalo
        self.daily_quota = daily_quota
        self.templates: dict[str, dict[str, int]] = {}  # id → parameter → max length
        self.used: dict[str, int] = {}  # local day → messages sent
        self.invalid_numbers: set[str] = set()
        self.no_zalo: set[str] = set()
        self.refuses: set[str] = set()
        self.undelivered: set[str] = set()
        self.fail_next: list[int] = []
        self.sent: list[dict[str, Any]] = []
        self.refused: list[tuple[int, dict[str, Any]]] = []
        self.webhook: tuple[str, str] | None = None
        self._posts: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def register_template(self, template_id: str, params: dict[str, int]) -> None:
        self.templates[template_id] = params

    def deliver_to(self, webhook_url: str, secret_key: str) -> None:
        self.webhook = (webhook_url, secret_key)

    async def start(self) -> FakeZNS:
        app = web.Application()
        app.router.add_post("/message/template", self._send)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def settle(self) -> None:
        while self._posts:
            await asyncio.gather(*list(self._posts), return_exceptions=True)

    async def stop(self) -> None:
        await self.settle()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ the API

    def _error(self, code: int, message: str, body: dict[str, Any]) -> web.Response:
        self.refused.append((code, body))
        return web.json_response({"error": code, "message": message})

    def _invalid_data(self, template: dict[str, int], data: Any) -> str:
        if not isinstance(data, dict) or not data:
            return "template_data must be a non-empty object"
        missing = set(template) - set(data)
        extra = set(data) - set(template)
        if missing or extra:
            return f"parameters missing {sorted(missing)} or unknown {sorted(extra)}"
        for name, value in data.items():
            if not isinstance(value, str) or not value or len(value) > template[name]:
                return f"parameter {name}: a string of 1 to {template[name]} characters"
        return ""

    async def _send(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text(), parse_int=str)
        except ValueError:
            return self._error(-121, "Body is not JSON", {})
        if request.headers.get("access_token", "") not in self.zalo.valid_access_tokens:
            return self._error(-124, "Access token is invalid", body)
        if self.fail_next:
            return self._error(self.fail_next.pop(0), "Injected failure", body)
        phone = body.get("phone")
        if not isinstance(phone, str) or not PHONE.match(phone) or phone in self.invalid_numbers:
            return self._error(-108, "Phone number invalid", body)
        template = self.templates.get(str(body.get("template_id") or ""))
        if template is None:
            return self._error(-109, "Template ID invalid", body)
        invalid = self._invalid_data(template, body.get("template_data"))
        if invalid:
            return self._error(-112, f"Template data invalid: {invalid}", body)
        if phone in self.no_zalo:
            return self._error(-118, "Zalo account not existed or was disabled", body)
        if phone in self.refuses:
            return self._error(-139, "User refused to receive ZNS from this OA", body)
        day = self.zalo.clock().date().isoformat()
        if self.used.get(day, 0) >= self.daily_quota:
            return self._error(-144, "OA has exceeded the daily quota", body)
        self.used[day] = self.used.get(day, 0) + 1
        message_id = f"zns{next(self._ids):029x}"
        self.sent.append({"msg_id": message_id, **body})
        if self.webhook is not None and phone not in self.undelivered:
            task = asyncio.create_task(self._receipt(message_id, str(body.get("tracking_id"))))
            self._posts.add(task)
            task.add_done_callback(self._posts.discard)
        left = self.daily_quota - self.used[day]
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {
                    "msg_id": message_id,
                    "sent_time": str(int(self.zalo.clock().timestamp() * 1000)),
                    "quota": {"dailyQuota": str(self.daily_quota), "remainingQuota": str(left)},
                },
            }
        )

    async def _receipt(self, message_id: str, tracking: str) -> None:
        assert self.webhook is not None
        await asyncio.sleep(0.1)  # Zalo reports delivery after it answered the send
        url, secret = self.webhook
        await self.zalo.receipt(
            url,
            secret,
            message_id,
            tracking_id=tracking,
            delivery_time=str(int(self.zalo.clock().timestamp() * 1000)),
        )
