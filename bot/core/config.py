"""The one settings object, read from PAPIBOT_* environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FRAMEWORK_DIR = PACKAGE_ROOT / "framework_data"
DEFAULT_SECRET_KEY = "change-me"
MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAPIBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite at DATA_DIR/papibot.db"
    )
    data_dir: Path = Path("./data")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_url: str = Field(default="", description="Public https base URL (webhooks, media)")
    timezone: str = "Asia/Ho_Chi_Minh"
    locale: str = "vi"
    framework_dir: Path = DEFAULT_FRAMEWORK_DIR
    framework_overrides: Path | None = Field(
        default=None, description="A province's folder of YAML files merged over the shipped ones"
    )
    secret_key: str = Field(
        default=DEFAULT_SECRET_KEY,
        description="Signs media links; at least 32 characters once PUBLIC_URL is set",
    )
    structure: str = Field(default="three_tier", description="three_tier or two_tier")
    district_substitute: str = Field(
        default="",
        description="two_tier: code of the provincial unit that takes the district's place",
    )
    invite_ttl_hours: int = 72
    plan_horizon_days: int = 62
    # PostgreSQL: connections the plan inserts on side by side (the server's work, one core each).
    plan_connections: int = Field(default=2, ge=1)

    telegram_token: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_secret: str = ""

    telegram_bot_username: str = Field(
        default="", description="For invite deep links (t.me/<name>?start=CODE)"
    )

    zalo_oa_link: str = Field(
        default="", description="The OA's follow link (https://zalo.me/<OA id>) shown in invites"
    )

    zalo_bot_token: str = ""
    zalo_bot_api_url: str = "https://bot-api.zaloplatforms.com"
    zalo_bot_webhook_secret: str = ""
    zalo_oa_app_id: str = ""
    zalo_oa_app_secret: str = ""
    zalo_oa_secret_key: str = ""
    zalo_oa_access_token: str = ""
    zalo_oa_refresh_token: str = ""
    zalo_oa_api_url: str = "https://openapi.zalo.me"
    zalo_oauth_url: str = "https://oauth.zaloapp.com"
    zalo_zns_api_url: str = "https://business.openapi.zalo.me"  # templates: framework reach.yaml
    zalo_rate_per_second: float = 10.0

    simulator_enabled: bool | None = Field(
        default=None,
        description="The web chat simulator at /sim (no login: anyone reaching it acts as any user). "
        "Default: on when PUBLIC_URL is empty (a local demo), off when it is set (production).",
    )

    sender_max_attempts: int = 8
    sender_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A claimed outbox batch is renewed every quarter of this while it is sent; "
        "rows of a crashed worker are sent again once it has run out",
    )
    scheduler_enabled: bool = True

    invite_wrong_codes_per_minute: int = Field(
        default=30,
        gt=0,
        description="Wrong registration codes accepted per minute from all chats together; "
        "beyond it every code is refused for the rest of the minute (a new chat id buys no "
        "guesses)",
    )
    zalo_oa_replay_window_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A Zalo OA event whose signed timestamp is older than this (or as far "
        "ahead) is refused with 403: a captured event cannot be replayed later",
    )
    zalo_media_hosts: str = Field(
        default="zdn.vn,zadn.vn,zalo.me,zaloapp.com,zaloplatforms.com",
        description="Comma-separated hosts (and their subdomains) that photos sent on Zalo are "
        "downloaded from; names must resolve to public addresses, an IP address listed here "
        "is trusted as it is (tests, a local mirror)",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request body must have arrived this long after the request began (408)",
    )
    min_free_disk_mb: int = Field(
        default=200, ge=0, description="/healthz answers 503 below this much free space"
    )
    upload_files_per_hour: int = Field(
        default=30, ge=1, description="Photos one person may send in any hour"
    )
    upload_bytes_per_day: int = Field(
        default=200 * 1024 * 1024, ge=1, description="Bytes of photos one person may send a day"
    )
    upload_max_pixels: int = Field(
        default=50_000_000,
        ge=1,
        description="Largest photo accepted, in pixels (a 48-megapixel iPhone photo fits)",
    )

    @property
    def simulator_on(self) -> bool:
        if self.simulator_enabled is not None:
            return self.simulator_enabled
        return not self.public_url

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'papibot.db').resolve()}"

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    @property
    def digests_dir(self) -> Path:
        return self.data_dir / "digests"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, None on PostgreSQL."""
        url = self.effective_database_url
        if not url.startswith("sqlite"):
            return None
        _scheme, _sep, rest = url.partition(":///")
        return Path(rest.split("?", 1)[0]) if rest else None

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def production_problems(settings: Settings) -> list[str]:
    """What makes these settings unsafe on the internet: one phrase per setting, each naming
    it. Empty without a public URL (local use: `make demo` needs no secrets)."""
    if not settings.public_url:
        return []
    problems = []
    key = settings.secret_key
    if key == DEFAULT_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            f"PAPIBOT_SECRET_KEY is the default or shorter than {MIN_SECRET_KEY_LENGTH} characters"
            " (`papibot secret` makes one)"
        )
    # Each channel's webhook is authenticated by a secret of its own, never one derived from
    # the key: whoever learns one secret must not be able to compute another.
    if settings.telegram_token and not settings.telegram_webhook_secret:
        problems.append("PAPIBOT_TELEGRAM_WEBHOOK_SECRET is empty while Telegram is enabled")
    if settings.zalo_bot_token and not settings.zalo_bot_webhook_secret:
        problems.append("PAPIBOT_ZALO_BOT_WEBHOOK_SECRET is empty while Zalo Bot is enabled")
    if settings.zalo_oa_app_id and not settings.zalo_oa_secret_key:
        problems.append("PAPIBOT_ZALO_OA_SECRET_KEY is empty while Zalo OA is enabled")
    if settings.simulator_on:
        problems.append("PAPIBOT_SIMULATOR_ENABLED is on (the simulator has no login)")
    return problems
