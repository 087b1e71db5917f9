"""The one settings object, read from PAPIBOT_* environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FRAMEWORK_DIR = PACKAGE_ROOT / "framework_data"


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
        default="change-me", description="Signs media links and invite deep links"
    )
    structure: str = Field(default="three_tier", description="three_tier or two_tier")
    district_substitute: str = Field(
        default="",
        description="two_tier: code of the provincial unit that takes the district's place",
    )
    invite_ttl_hours: int = 72
    plan_horizon_days: int = 62

    telegram_token: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_secret: str = ""

    telegram_bot_username: str = Field(
        default="", description="For invite deep links (t.me/<name>?start=CODE)"
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
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")
