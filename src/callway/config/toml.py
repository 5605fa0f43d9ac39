"""``callway.toml``: what Asterisk's and Kamailio's files cannot express.

Every section is optional; unknown keys are errors naming the key, so a typo
does not silently fall back to a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callway.balancer.media import parse_relay_address
from callway.config.errors import ConfigError
from callway.ops.config import TraceSettings


@dataclass(frozen=True, slots=True)
class RtpSettings:
    """``[rtp]``: the media relay's port range (Asterisk's rtp.conf rtpstart/rtpend)."""

    bind: str = "0.0.0.0"
    start: int = 10000
    end: int = 20000


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """``[admin]``: the admin HTTP API."""

    listen: str = "127.0.0.1:8088"
    token: str = ""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``[auth]``: digest algorithms offered in challenges, preferred first (RFC 8760)."""

    algorithms: tuple[str, ...] = ("MD5",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        known = {"MD5", "SHA-256", "SHA-512-256"}
        unknown = [a for a in self.algorithms if a not in known]
        if unknown or not self.algorithms:
            raise TypeError(f"algorithms must be a non-empty list of {sorted(known)}")


@dataclass(frozen=True, slots=True)
class BalancerToml:
    """``[balancer]``: what Kamailio's cfg says with listen= and modparam()."""

    listen: tuple[str, ...] = ()
    list_file: str = "dispatcher.list"
    set: int = 1
    algorithm: int = 9
    advertise: str = ""
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    probing_threshold: int = 1
    inactive_threshold: int = 1
    ping_reply_codes: str = ""
    probing_mode: int = 0
    alert_url: str = ""
    alert_secret: str = ""
    media_relay: str = ""  # udp:IP:PORT of an ng media relay (rtpengine_sock); "" = none

    def __post_init__(self) -> None:
        listen = self.listen
        object.__setattr__(self, "listen", (listen,) if isinstance(listen, str) else tuple(listen))
        if self.media_relay:
            try:
                parse_relay_address(str(self.media_relay))
            except ValueError as exc:
                raise TypeError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class HaSettings:
    """``[ha]``: the keepalived pair (``callway keepalived`` renders it)."""

    vip: str = "192.0.2.100"
    prefix: int = 24
    interface: str = "eth0"
    virtual_router_id: int = 51
    priority: int = 150
    advert_int: float = 1.0
    master_address: str = ""
    backup_address: str = ""
    check_uri: str = "sip:s@127.0.0.1:5060"
    probe_timeout: float = 0.5
    interval: int = 1
    fall: int = 2
    rise: int = 2
    notify: str = ""
    callway: str = ""
    preempt_delay: float = 0.0
    nopreempt: bool = False


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """``[store]``: ``sqlite`` (embedded, one node) or ``redis://host:port/db`` (shared)."""

    url: str = "sqlite"
    node_id: str = ""
    prefix: str = "callway"

    def __post_init__(self) -> None:
        if self.url != "sqlite" and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise TypeError("url must be 'sqlite' or a redis:// URL")


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    """``[callback]``: hold the caller and push-notify an offline callee (the seed's §5)."""

    endpoints: tuple[str, ...] = ()  # push-capable endpoints; "*" = all
    mode: str = "hold"  # "hold" (bridge when the callee registers) or "conference"
    timeout: float = 60.0
    hold_media: str = "ringback"  # "ringback" (180, not answered) or "moh" (answer + music)
    webhook_url: str = ""
    webhook_secret: str = ""
    room_prefix: str = "callback-"
    announcement: str = "vm-goodbye"

    def __post_init__(self) -> None:
        value = self.endpoints
        object.__setattr__(self, "endpoints", (value,) if isinstance(value, str) else tuple(value))
        if self.mode not in ("hold", "conference"):
            raise TypeError("mode must be 'hold' or 'conference'")
        if self.hold_media not in ("ringback", "moh"):
            raise TypeError("hold_media must be 'ringback' or 'moh'")

    def push_capable(self, endpoint: str) -> bool:
        """Configured for callback (RFC 8599 parameters on a Contact also qualify)."""
        return "*" in self.endpoints or endpoint in self.endpoints


@dataclass(frozen=True, slots=True)
class AlertsSettings:
    """``[alerts]``: where a PBX posts its alerts (registrations drop, failure ratio)."""

    url: str = ""
    secret: str = ""


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """``[security]``: flood protection (pike), scanner filtering, message limits."""

    pike_limit: int = 0  # requests per pike_window per source address; 0 = off
    pike_window: float = 2.0
    pike_ban: float = 300.0
    trusted: tuple[str, ...] = ()  # addresses never rate-limited (balancers, trunks)
    drop_scanners: bool = False  # drop requests whose User-Agent is a known scanner
    scanner_agents: tuple[str, ...] = (
        "friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sipsak-scan", "vaxsipuseragent",
        "iwar", "sundayddr", "pplsip", "sip.js/scan",
    )  # fmt: skip

    max_transactions: int = 100_000  # beyond it new requests get 503 (0: no cap)
    max_calls: int = 10_000  # concurrent channels of a PBX (0: no cap)
    tcp_max_per_ip: int = 100
    tcp_max_total: int = 10_000
    tcp_partial_timeout: float = 30.0
    tcp_idle_timeout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("trusted", "scanner_agents"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.pike_limit < 0 or self.pike_window <= 0 or self.pike_ban < 0:
            raise TypeError("pike_limit >= 0, pike_window > 0, pike_ban >= 0")


@dataclass(frozen=True, slots=True)
class CallwaySettings:
    """The whole file."""

    rtp: RtpSettings = field(default_factory=RtpSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    balancer: BalancerToml = field(default_factory=BalancerToml)
    ha: HaSettings = field(default_factory=HaSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    callback: CallbackSettings = field(default_factory=CallbackSettings)
    trace: TraceSettings = field(default_factory=TraceSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)


_SECTIONS: dict[str, type] = {
    "rtp": RtpSettings,
    "admin": AdminSettings,
    "auth": AuthSettings,
    "balancer": BalancerToml,
    "ha": HaSettings,
    "store": StoreSettings,
    "callback": CallbackSettings,
    "trace": TraceSettings,
    "alerts": AlertsSettings,
    "security": SecuritySettings,
}


def parse_settings(text: str, filename: str = "callway.toml") -> CallwaySettings:
    """Translate the TOML text; ConfigError names the file, line and problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", 0)
        raise ConfigError(filename, line, str(exc)) from exc
    values: dict[str, Any] = {}
    for name, table in data.items():
        kind = _SECTIONS.get(name)
        if kind is None or not isinstance(table, dict):
            raise ConfigError(filename, _line_of(text, f"[{name}]"), f"unknown section [{name}]")
        try:
            values[name] = kind(**table)
        except TypeError as exc:
            raise ConfigError(filename, _line_of(text, f"[{name}]"), f"[{name}]: {exc}") from exc
    settings = CallwaySettings(**values)
    if not 0 < settings.rtp.start < settings.rtp.end <= 65535:
        raise ConfigError(filename, _line_of(text, "[rtp]"), "[rtp] needs 0 < start < end <= 65535")
    return settings


def load_settings(path: Path | None) -> CallwaySettings:
    """Read the file; all defaults when ``path`` is None."""
    if path is None:
        return CallwaySettings()
    return parse_settings(path.read_text(encoding="utf-8"), str(path))


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(needle):
            return number
    return 0
