"""One settings object, read from a TOML file and ENGAGEMENT_* environment variables."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from . import constants as C
from .availability import DEFAULT_STALE_AFTER_S, WhenStale
from .pacing.model import (
    DEFAULT_AVG_HANDLE_TIME_S,
    DEFAULT_GOAL_PCT,
    DEFAULT_REFRESH_PERIOD_S,
    Algorithm,
    Channel,
    GroupConfig,
    Target,
)
from .pacing.pacer import PacingConfig
from .roles import Role
from .throttle import Rate


def _rate(text: str) -> str:
    Rate.parse(text)  # raises RateError (a ValueError) with what to write instead
    return text


RateText = Annotated[str, AfterValidator(_rate)]

# "UserInfo.email": a field of the visit's UserInfo, SignIn or VisitStarted events.
VisitField = Annotated[
    str, Field(pattern=r"^(UserInfo|SignIn|VisitStarted)\.[A-Za-z_][A-Za-z0-9_-]{0,63}$")
]
WidgetsFormField = Literal["firstname", "lastname", "email", "subject"]
DEFAULT_CHAT_FORM: dict[WidgetsFormField, str] = {
    "firstname": "UserInfo.firstName",
    "lastname": "UserInfo.lastName",
    "email": "UserInfo.email",
}


class UserData(BaseModel):
    """Like GWE's userData section: what of the visit travels with a hand-off."""

    model_config = ConfigDict(extra="forbid")

    attach: list[VisitField] = Field(
        default_factory=list,
        description="fields copied into the attached data of chats, callbacks and webhooks, "
        "under their own name (e.g. VisitStarted.timezoneOffset -> timezoneOffset)",
    )
    form: dict[WidgetsFormField, VisitField] = Field(
        default_factory=lambda: dict(DEFAULT_CHAT_FORM),
        description="the Widgets chat registration form, prefilled from these fields",
    )


CONFIG_ENV = "ENGAGEMENT_CONFIG"
DEFAULT_CONFIG_FILE = "engagement.toml"
_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


class GroupPacing(BaseModel):
    """One agent group's pacing, with GWE's option names (docs/pacing.md)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Algorithm = Algorithm.SUPER_PROGRESSIVE
    optimizationTarget: Target = Target.ABANDONEMENT_RATE
    optimizationGoal: float = Field(DEFAULT_GOAL_PCT, ge=1, le=99, description="percent")
    refreshPeriod: float = Field(DEFAULT_REFRESH_PERIOD_S, gt=0, le=300, description="seconds")
    proactiveRatio: float = Field(
        1.0, ge=0, le=1, description="_DUAL: share of free capacity proactive traffic may use"
    )
    channel: Channel = Channel.CHAT
    chatsPerAgent: int = Field(1, ge=1, le=50, description="when the feed does not say")
    avgHandleTimeS: float = Field(DEFAULT_AVG_HANDLE_TIME_S, gt=0, description="idem")

    def config(self) -> GroupConfig:
        return GroupConfig(
            self.algorithm, self.optimizationTarget, self.optimizationGoal, self.refreshPeriod,
            self.proactiveRatio, self.channel, self.chatsPerAgent, self.avgHandleTimeS,
        )  # fmt: skip


class PacingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: `availability` is a gate on agentsReady")
    queue_wait_s: float = Field(
        C.PACED_WAIT_S, gt=0, description="a paced visitor waits this long for an invitation"
    )
    default: GroupPacing = Field(default_factory=GroupPacing, description="groups not listed")
    groups: dict[str, GroupPacing] = Field(default_factory=dict)

    def config(self) -> PacingConfig:
        groups = {name: g.config() for name, g in self.groups.items()}
        return PacingConfig(groups, self.default.config())


class ApiKey(BaseModel):
    """A key with the role it grants (a plain string in ``api_keys`` is an admin key)."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=16, description="the secret sent as X-API-Key or Bearer")
    role: Role = Field(Role.ADMIN, description="agent, supervisor or admin")
    name: str = Field("", max_length=100, description="who holds it, as the audit log says")


class Settings(BaseSettings):
    """Engine configuration.

    Precedence: keyword arguments, then ``ENGAGEMENT_*`` environment variables, then the
    TOML file (``ENGAGEMENT_CONFIG`` or ``./engagement.toml``), then these defaults.
    List values in the environment are JSON, e.g. ``ENGAGEMENT_API_KEYS='["k1"]'``.
    """

    model_config = SettingsConfigDict(env_prefix="ENGAGEMENT_", extra="forbid")

    host: str = "0.0.0.0"
    port: int = Field(C.DEFAULT_PORT, ge=1, le=65535)
    public_url: str | None = Field(
        None, description="URL the engine is reached at, if not http://localhost:<port>"
    )
    data_dir: Path = Path("data")
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:*", "http://127.0.0.1:*"],
        description="Site origins allowed on the browser endpoints; '*' matches within a part",
    )
    api_keys: list[str | ApiKey] = Field(
        default_factory=list,
        description="Keys accepted by the REST API and the console: a string (an admin key) or "
        "{key, role, name} with role agent, supervisor or admin; empty = one admin key "
        "generated into data_dir",
    )
    basic_auth_users: dict[str, str] = Field(
        default_factory=dict,
        description="user -> password accepted as HTTP Basic auth beside API keys (GWE's "
        "agent desktops use Basic); send it over HTTPS only",
    )
    frame_ancestors: list[str] = Field(
        default_factory=list,
        description="origins (agent desktops, CRM side panels) that may frame the signed visit "
        "view /desktop/visits/...; the rest of the console is never framed",
    )
    desktop_link_ttl_s: float = Field(
        C.DESKTOP_LINK_TTL_S, gt=0, le=86_400, description="a signed visit-view link lasts this"
    )
    visit_timeout_s: float = Field(C.VISIT_IDLE_TIMEOUT_S, gt=0)
    retention_days: float = Field(C.HISTORY_RETENTION_DAYS, gt=0)
    history_flush_interval_s: float = Field(C.HISTORY_FLUSH_INTERVAL_S, gt=0)
    database_url: str | None = Field(
        None,
        description="postgresql://user:password@host:5432/db: durable records (history, callback "
        "outbox, audit) in PostgreSQL, shared by several nodes; unset = the SQLite file in "
        "data_dir",
    )
    max_body_bytes: int = Field(C.MAX_BODY_BYTES, ge=1024)
    max_live_visits: int = Field(
        C.MAX_LIVE_VISITS, ge=1, description="visits held in memory; see README, Limits"
    )
    evict_idle_after_s: float = Field(
        C.EVICT_IDLE_AFTER_S, ge=0, description="at max_live_visits, idle visits closed early"
    )
    max_pages_per_visit: int = Field(C.MAX_PAGES_PER_VISIT, ge=2)
    max_events_per_visit: int = Field(C.MAX_EVENTS_PER_VISIT, ge=1)
    max_streams_per_visit: int = Field(C.MAX_STREAMS_PER_VISIT, ge=1)
    cookie_domain: str | None = Field(None, description="Force the tracker's cookie domain")
    strategies_dir: Path = Field(Path("strategies"), description="marketer strategy files")
    invites_dir: Path = Field(Path("invites"), description="invitation templates")
    strict_mode: bool = Field(True, description="one live engagement attempt per visit")
    engagement_expiration_s: float = Field(
        C.ENGAGEMENT_EXPIRATION_S, gt=0, description="an attempt not offered by then expires"
    )
    accepted_expiration_s: float = Field(
        C.ACCEPTED_EXPIRATION_S, gt=0, description="an accepted attempt never launched: failed"
    )
    chat_max_duration_s: float = Field(
        C.CHAT_MAX_DURATION_S,
        gt=0,
        description="a launched chat with no news (restored, agent connected) for this long is "
        "completed, so strict mode never holds a visit for ever",
    )
    content_origins: list[str] = Field(
        default_factory=list,
        description="origins gpe.appendContent may load from, besides the engine and the page",
    )
    trusted_content: bool = Field(
        False,
        description="run the scripts of HTML that gpe.appendContent loads from content_origins "
        "(with the page's CSP nonce), for legacy GWE invite.html widgets; off: sanitized",
    )
    push_heartbeat_s: float = Field(C.PUSH_HEARTBEAT_S, gt=0)
    push_buffer_messages: int = Field(
        C.PUSH_BUFFER_MESSAGES,
        ge=1,
        le=10_000,
        description="messages kept per visit for pages that reconnect (with redis_url: the "
        "Redis Stream's MAXLEN, and a page that missed more is told gpe.resync)",
    )
    push_buffer_ttl_s: float = Field(
        C.PUSH_MESSAGE_TTL_S,
        ge=1,
        le=86_400,
        description="a page that reconnects within this gets what it missed; a visit's Redis "
        "buffer with no message for this long expires",
    )
    decision_webhook_url: str | None = Field(
        None, description="strategies with `decide: external` announce attempts here"
    )
    webhook_secret: str | None = Field(None, description="HMAC key signing outgoing webhooks")
    gms_url: str | None = Field(
        None, description="Genesys Mobile Services base URL; none: the demo GMS at /demo/gms"
    )
    gms_user: str | None = None
    gms_password: str | None = None
    gms_callback_service: str = Field("callback", description="when an offer names none")
    gms_extra: dict[str, str] = Field(
        default_factory=dict, description="extra keys sent with every GMS request"
    )
    gms_timeout_s: float = Field(
        C.GMS_TIMEOUT_S, gt=0, le=300, description="a GMS request not answered by then is retried"
    )
    gms_chat: bool = Field(False, description="create chats through GMS request-chat")
    chat_url: str | None = Field(
        None, description="chat page opened (with visitID, pageID) where Widgets are absent"
    )
    chat_finalize_message: str | None = Field(
        None,
        description="opt-in: when the agent closes a Widgets chat segment, inject this message "
        "(asynchronous chat) or end the chat (otherwise)",
    )
    custom_webhook_url: str | None = Field(
        None, description="accepted `custom` invitations are posted here, signed"
    )
    availability_stale_after_s: float = Field(
        DEFAULT_STALE_AFTER_S, gt=0, description="an older availability report is stale"
    )
    availability_when_stale: WhenStale = Field(
        WhenStale.CLOSED, description="a stale or never reported group: closed or open"
    )
    pacing: PacingSettings = Field(default_factory=PacingSettings)
    user_data: UserData = Field(default_factory=UserData)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or CIDRs of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; nobody else's are",
    )
    callback_limit_per_number: RateText = Field("3/hour", description="callbacks to one phone")
    callback_limit_per_visitor: RateText = Field("3/hour", description="per globalVisitID")
    callback_limit_per_address: RateText = Field("10/hour", description="per client address")
    callback_limit_overall: RateText = Field("60/minute", description="all callbacks, this node")
    chat_limit_per_visitor: RateText = Field("10/hour", description="GMS chats per globalVisitID")
    chat_limit_per_address: RateText = Field("30/hour", description="GMS chats per address")
    chat_limit_overall: RateText = Field("120/minute", description="all GMS chats, this node")
    auth_free_failures: int = Field(
        C.AUTH_FREE_FAILURES, ge=0, description="wrong API keys an address may send unpunished"
    )
    auth_lockout_base_s: float = Field(C.AUTH_LOCKOUT_BASE_S, gt=0)
    auth_lockout_max_s: float = Field(C.AUTH_LOCKOUT_MAX_S, gt=0)
    shutdown_timeout_s: float = Field(
        C.SHUTDOWN_TIMEOUT_S,
        gt=0,
        description="on SIGTERM, time to finish requests and write what is queued; then exit",
    )
    ready_max_history_queue: int = Field(
        C.READY_MAX_HISTORY_QUEUE, ge=1, description="/ready says 503 above this many rows"
    )
    ready_max_callback_queue: int = Field(
        C.READY_MAX_CALLBACK_QUEUE, ge=1, description="/ready says 503 above this many"
    )
    redis_url: str | None = Field(
        None,
        pattern=r"^(rediss?|unix|redis\+cluster|redis\+sentinel)://",
        description="Redis for live state shared by several nodes (docs/cluster.md): one "
        "server (redis://host:port/db, rediss://, unix://); under Redis Sentinel, the master "
        "the sentinels name (redis+sentinel://[[user]:password@]host:port[,host:port...]/"
        "master-name[/db]), followed through failovers; or the seed nodes of a Redis Cluster "
        "(redis+cluster://[[user]:password@]host:port[,host:port...], no database). Needs "
        "database_url too, or single_node",
    )
    single_node: bool = Field(
        False,
        description="with redis_url and no database_url: this is the only node, so its "
        "SQLite history is whole (otherwise refused at start)",
    )
    consent_mode: bool = Field(
        False,
        description="the tracker stores nothing in the browser and sends nothing until the "
        "site pushes ['consent', {analytics, engagement}] (docs/privacy.md)",
    )
    user_info_fields: list[str] | None = Field(
        None,
        description="the only UserInfo/SignIn fields kept (the others are dropped at ingest, "
        "counted); none: every field",
    )
    first_party_cookie: bool = Field(
        False,
        description="the engine, served under the site's own domain, keeps the globalVisitID "
        "in an HttpOnly cookie it sets itself (POST /visitor-id; docs/privacy.md)",
    )
    first_party_cookie_domain: str | None = Field(
        None, description="that cookie's Domain (e.g. shop.com); none: the engine's host only"
    )
    linked_domains: list[str] = Field(
        default_factory=list,
        description="the company's own registrable domains (e.g. shop.com, shop-pay.com) a "
        "visit follows links and forms to, by a signed single-use token",
    )
    link_token_ttl_s: float = Field(
        C.LINK_TOKEN_TTL_S, gt=0, le=3600, description="a link token lasts this long"
    )
    chat_session_max_bytes: int = Field(
        C.CHAT_SESSION_MAX_BYTES, ge=256, le=C.MAX_BODY_BYTES,
        description="Widgets' async chat session data kept per visitor, at most",
    )  # fmt: skip
    demo: bool = Field(True, description="Serve the demo site at /demo/")
    log_format: str = Field("text", pattern="^(text|json)$")
    log_level: str = "INFO"

    @field_validator("frame_ancestors")
    @classmethod
    def _frame_sources(cls, value: list[str]) -> list[str]:
        # Written into a CSP header: only plain origins, never a quote, space or `;`.
        for origin in value:
            if not re.fullmatch(r"https?://[A-Za-z0-9*.-]+(:(\d{1,5}|\*))?", origin):
                raise ValueError(f"{origin!r} is not an origin like 'https://crm.example.com'")
        return value

    @field_validator("linked_domains")
    @classmethod
    def _plain_domains(cls, value: list[str]) -> list[str]:
        for domain in value:
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", domain):
                raise ValueError(f"{domain!r} is not a lower-case domain like 'shop.com'")
        return value

    @model_validator(mode="after")
    def _attached_fields_are_kept(self) -> Settings:
        kept = self.user_info_fields
        if kept is None:
            return self
        for field in self.user_data.attach:
            event, _, name = field.partition(".")
            if event in ("UserInfo", "SignIn") and name not in kept:
                raise ValueError(
                    f"user_data.attach names {field} but user_info_fields does not keep {name!r}"
                )
        return self

    @field_validator("allowed_origins")
    @classmethod
    def _origins_have_scheme(cls, value: list[str]) -> list[str]:
        for origin in value:
            if "://" not in origin:
                raise ValueError(f"origin {origin!r} needs a scheme, e.g. 'https://{origin}'")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"{proxy!r} is not an IP address or CIDR: {exc}") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file.get() or Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

    @property
    def db_path(self) -> Path:
        return self.data_dir / "engagement.sqlite3"

    @property
    def records_at(self) -> Path | str:
        """Where durable records live: the PostgreSQL URL, or else the SQLite file."""
        return self.database_url or self.db_path

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"{value.split(':', 1)[0]!r} is not postgresql:// (leave it unset for SQLite)"
            )
        return value or None

    def content_sources(self) -> list[str]:
        """Origins content may be loaded from besides the engine: content_origins and the exact
        (wildcard-free) site origins; the tracker and the notify endpoint apply the same list."""
        exact_sites = {o for o in self.allowed_origins if "*" not in o}
        return sorted(exact_sites | set(self.content_origins))

    def resolved_gms_url(self) -> str | None:
        if self.gms_url:
            return self.gms_url
        return f"http://127.0.0.1:{self.port}/demo/gms" if self.demo else None

    @property
    def api_key_file(self) -> Path:
        return self.data_dir / C.API_KEY_FILE

    def generate_api_key(self) -> str | None:
        """With no key configured and none in the data folder yet: a new one, written there
        (readable by this user only) and returned; otherwise None."""
        if self.api_keys or self.api_key_file.exists():
            return None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        self.api_key_file.write_text(key + "\n")
        self.api_key_file.chmod(0o600)
        return key

    def configured_keys(self) -> list[ApiKey]:
        """``api_keys`` with every entry named and given its role (plain strings: admin)."""
        keys = []
        for number, entry in enumerate(self.api_keys, 1):
            if isinstance(entry, str):  # as before roles: any length, admin
                entry = ApiKey.model_construct(key=entry, role=Role.ADMIN, name="")
            keys.append(entry if entry.name else entry.model_copy(update={"name": f"key-{number}"}))
        return keys

    def resolved_keys(self) -> list[ApiKey]:
        """The configured keys, or the admin key generated into the data folder on first start."""
        if self.api_keys:
            return self.configured_keys()
        self.generate_api_key()
        return [ApiKey(key=self.api_key_file.read_text().strip(), name="generated")]

    def resolved_api_keys(self) -> list[str]:
        return [k.key for k in self.resolved_keys()]


FOLDER_SETTINGS = ("data_dir", "strategies_dir", "invites_dir")


def settings_file(config_file: Path | None = None) -> Path:
    """Where settings are read from: ``--config``, else ENGAGEMENT_CONFIG, else
    ./engagement.toml (which may not exist)."""
    return config_file or Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings; ``config_file`` replaces the ENGAGEMENT_CONFIG lookup.

    Relative folders (``data_dir``, ``strategies_dir``, ``invites_dir``) are relative to the
    settings file's folder when there is a settings file, so every command run with the same
    settings file finds the same folders wherever it runs; ``overrides`` (command-line
    options) stay relative to the current folder."""
    named = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if named is not None and not named.is_file():
        state = "is not a file" if named.exists() else "does not exist"
        raise FileNotFoundError(f"settings file {named} {state}")
    token = _config_file.set(config_file)
    try:
        settings = Settings(**overrides)
    finally:
        _config_file.reset(token)
    path = settings_file(config_file)
    if not path.is_file():
        return settings
    base = path.resolve().parent
    rebased = {
        name: base / getattr(settings, name)
        for name in FOLDER_SETTINGS
        if name not in overrides and not getattr(settings, name).is_absolute()
    }
    return settings.model_copy(update=rebased)


def describe_errors(exc: ValidationError) -> str:
    """One line per bad setting: `name: what is wrong`."""
    return "\n".join(
        f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
    )
