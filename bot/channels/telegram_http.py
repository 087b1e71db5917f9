"""python-telegram-bot's HTTP transport on aiohttp (already papibot's web server and client)
instead of its default httpx.

Why: profiled under load, httpx with httpcore and anyio took about a quarter of the server's
time (a cancel scope and a pool lock per request), for the two to four Bot API calls each button
tap or photo causes. aiohttp's client costs a fraction of that for the same calls.
"""

from __future__ import annotations

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` for `telegram.Bot(request=…, get_updates_request=…)`."""

    def __init__(self, connection_pool_size: int = 32, timeout: float = 10.0) -> None:
        self._pool_size = connection_pool_size
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        await self.initialize()
        assert self._session is not None
        timeout = aiohttp.ClientTimeout(
            sock_read=self._seconds(read_timeout),
            sock_connect=self._seconds(connect_timeout),
            total=None,  # a long poll lasts as long as its read timeout allows
        )
        fields = request_data.json_parameters if request_data else {}
        files = request_data.multipart_data if request_data else {}
        body: aiohttp.FormData | dict[str, str] = fields
        if files:
            form = aiohttp.FormData()
            for name, value in fields.items():
                form.add_field(name, value)
            for name, (file_name, content, mime) in files.items():
                form.add_field(name, content, filename=file_name, content_type=mime)
            body = form
        try:
            async with self._session.request(method, url, data=body, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error

    def _seconds(self, value: object) -> float | None:
        if isinstance(value, DefaultValue):
            return self._timeout
        return value if isinstance(value, int | float) else None
