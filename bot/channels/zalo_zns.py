"""Zalo Notification Service (ZNS): an approved template sent to a phone number.

The last chat step of a reach chain before the commune is told (bot/core/services/reach.py). It needs
the province's Zalo OA (its rotating access token, bot/channels/zalo_tokens.py) and, per kind of
message, a template Zalo approved (framework_data/reach.yaml: its id and which of our fields
fills each parameter). `POST {zalo_zns_api_url}/message/template` with the `access_token` header
and `{phone: 84…, template_id, template_data, tracking_id}`; like the OA API it answers HTTP 200
with `error != 0` on failure. ZNS is charged per message and has a daily quota. Zalo tells
whether the phone received it with a `user_received_message` event on the OA webhook
(bot/channels/zalo_oa.py), matched by the message id returned here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.base import DeliveryError
from bot.channels.zalo_tokens import Token, ZaloTokenStore
from bot.core.context import AppContext
from bot.core.messages import Outgoing
from bot.core.services.reach import ZNS, normalise_phone
from bot.core.services.reach_policy import PARAM_LIMIT, ReachPolicy, load_reach_policy

log = logging.getLogger(__name__)

CHANNEL = ZNS
SEND_PATH = "/message/template"
TRACKING_LIMIT = 48  # characters Zalo keeps of a tracking id

TOKEN_ERRORS = {-124, -216, -220}
RATE_LIMITED = -32
UNKNOWN_ERROR = -100  # Zalo: "try again later"
# What each refusal means for the person (bot.core.models.FAILURE_REASONS).
REASONS = {
    -108: "invalid_phone",  # not a phone number Zalo accepts
    -118: "no_channel",  # no Zalo account on this number, or it was disabled
    -114: "blocked",  # the person does not receive ZNS (settings, old app, inactive)
    -119: "blocked",
    -139: "blocked",  # the person refused this OA's notifications
    -115: "quota",  # the ZNS balance is spent
    -144: "quota",  # the OA's daily quota is spent
}


def zns_configured(policy: ReachPolicy, app_id: str) -> bool:
    """ZNS runs on the province's OA, with at least one template registered."""
    return bool(app_id) and any(policy.template(kind) for kind in ("reminder", "overdue"))


def tracking_id(key: str) -> str:
    """The outbox key, or its digest when too long: Zalo echoes it in the delivery event."""
    if len(key) <= TRACKING_LIMIT:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:TRACKING_LIMIT]


class ZaloZNSChannel:
    """A sender only: ZNS has no inbound messages, and its receipts come through the OA."""

    name = CHANNEL

    def __init__(self, ctx: AppContext, tokens: ZaloTokenStore | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.policy = load_reach_policy(ctx.settings)  # bad templates stop the start-up
        self._http: aiohttp.ClientSession | None = None
        # Share the OA channel's store: its refresh token is single use.
        self.tokens = tokens or ZaloTokenStore(ctx.db, ctx.settings, self.http)
        self.rate_limit_retry_after = 30.0

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self._http

    def template_data(self, kind: str, fields: dict[str, Any]) -> tuple[str, dict[str, str]]:
        template = self.policy.template(kind)
        if template is None:
            raise DeliveryError(f"ZNS: no template registered for `{kind}`", permanent=True)
        data = {
            param: str(fields.get(ours, ""))[:PARAM_LIMIT] or "—"
            for param, ours in template.params.items()
        }
        return template.template_id, data

    async def send(self, external_id: str, message: Outgoing, idempotency_key: str) -> str:
        raise DeliveryError("ZNS sends templates only, not chat messages", permanent=True)

    async def send_payload(self, phone: str, payload: dict[str, Any], idempotency_key: str) -> str:
        spec = payload.get("zns") if isinstance(payload.get("zns"), dict) else {}
        number = normalise_phone(phone)
        if number is None:
            raise DeliveryError(
                f"ZNS: {phone!r} is not a Vietnamese mobile number",
                permanent=True,
                reason="invalid_phone",
            )
        template_id, data = self.template_data(
            str(spec.get("kind") or ""), spec.get("fields") or {}
        )
        body = {
            "phone": number,
            "template_id": template_id,
            "template_data": data,
            "tracking_id": tracking_id(idempotency_key),
        }
        token = await self.tokens.current()
        error, answer = await self._post(token, body)
        if error in TOKEN_ERRORS:
            token = await self.tokens.refresh(token.version)
            error, answer = await self._post(token, body)
        if error == 0:
            data_out = answer.get("data") if isinstance(answer.get("data"), dict) else {}
            message_id = str(data_out.get("msg_id") or "")
            if not message_id:
                raise DeliveryError("ZNS accepted the message but returned no msg_id")
            return message_id
        raise self._error(error, answer)

    async def _post(self, token: Token, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = self.settings.zalo_zns_api_url.rstrip("/") + SEND_PATH
        try:
            async with self.http().post(
                url, json=body, headers={"access_token": token.access_token}
            ) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DeliveryError(f"ZNS: {type(error).__name__}: {error}") from error
        if status == 429:
            raise DeliveryError("ZNS: HTTP 429", retry_after=self.rate_limit_retry_after)
        if status >= 500:
            raise DeliveryError(f"ZNS: HTTP {status}")
        try:
            answer = json.loads(text, parse_int=str) if text else {}
        except ValueError:
            answer = {}
        if status != 200 or not isinstance(answer, dict):
            raise DeliveryError(f"ZNS: HTTP {status} {text[:200]}", permanent=True)
        try:
            return int(str(answer.get("error", "0"))), answer
        except ValueError:
            return -1, answer

    def _error(self, error: int, answer: dict[str, Any]) -> DeliveryError:
        message = f"ZNS: error {error} {str(answer.get('message') or '')[:300]}"
        if error == RATE_LIMITED:
            return DeliveryError(message, retry_after=self.rate_limit_retry_after)
        if error == UNKNOWN_ERROR:
            return DeliveryError(message)  # Zalo's own advice: try again later
        if error in TOKEN_ERRORS:
            return DeliveryError(message + " (after a token refresh)")
        return DeliveryError(message, permanent=True, reason=REASONS.get(error, "platform_error"))

    # ------------------------------------------------------------------ lifecycle

    def add_routes(self, app: web.Application) -> None:
        """Nothing: ZNS delivery events arrive on the OA webhook."""

    async def start(self) -> None:
        log.info(
            "ZNS templates: %s",
            ", ".join(
                f"{kind}={t.template_id}"
                for kind, t in self.policy.zns.templates.items()
                if t.template_id
            ),
        )

    async def stop(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
