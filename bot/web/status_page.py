"""The page at `/`: it says where the work is seen, and shows no unit's data (it has no login).

The dashboard is reached by a personal link the bot sends in chat; `landing_html` is the one
place to change when the page should say more.
"""

from __future__ import annotations

from aiohttp import web

PAGE = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>papibot</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em">
<h1>papibot</h1>
<p>Theo dõi các nhiệm vụ nâng cao Chỉ số PAPI theo Quyết định 3012/QĐ-UBND của UBND tỉnh
Khánh Hòa.</p>
<p>Trang theo dõi công việc được mở bằng đường liên kết mà bot gửi cho anh/chị trong Zalo hoặc
Telegram: nhắn <b>/web</b> cho bot để nhận đường liên kết (dùng một lần, trong 10 phút).
<a href='/dashboard/login'>Hướng dẫn đăng nhập</a></p>
{extra}</body></html>
"""


def landing_html(simulator: bool = False) -> str:
    extra = (
        "<p><a href='/sim'>Mô phỏng trò chuyện (chạy thử trên máy)</a></p>\n" if simulator else ""
    )
    return PAGE.format(extra=extra)


def add_routes(app: web.Application, simulator: bool = False) -> None:
    page = landing_html(simulator)

    async def landing(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/", landing)
