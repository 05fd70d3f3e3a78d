"""config.toml -> frozen, typed settings.

Settings are loaded once at start (`load`). Every key may be overridden by an environment
variable ``NEWSLETTER_<SECTION>__<KEY>``. A wrong key or value raises `ConfigError` naming the
key, the value and what is allowed, so the service refuses to start rather than misbehave.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ConfigError
from newsletter.resources import sample_config_path
from newsletter.text import xml_safe

ENV_PREFIX = "NEWSLETTER_"
SECRET_FILE = ".secret_key"

Check = Callable[[Any], str | None]  # returns a description of what is allowed, or None if ok


def _choice(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else "one of " + ", ".join(repr(a) for a in allowed)

    return check


def _http_url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc and not parts.query:
        return None
    return "an absolute http:// or https:// URL"


def _optional_http_url(value: Any) -> str | None:
    return None if value == "" else _http_url(value)


def _timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone name such as 'UTC' or 'Asia/Jakarta'"
    return None


def _language(value: Any) -> str | None:
    ok = re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", value)
    return None if ok else "a BCP 47 language tag such as 'en' or 'id-ID'"


def _db_url(value: Any) -> str | None:
    if re.match(r"(sqlite|postgresql)(\+\w+)?://", value):
        return None
    return "a URL starting with sqlite:/// or postgresql+psycopg://"


# user:password@ in a URL; greedy up to the last '@', so a password with an unencoded '@'
# is hidden whole
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:).*@")


def redact_url(url: str) -> str:
    """`url` fit for a message or a log: the password in it (if any) replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def url_password(url: str) -> str:
    """The password part of `url` as written ('' without one), to keep it out of messages."""
    found = _URL_PASSWORD.match(url)
    return url[found.end(1) : found.end() - 1] if found else ""


# Characters that end a header line or an SMTP command, or that no setting has a use for:
# the C0 and C1 controls and DEL, and U+2028/U+2029 (str.splitlines breaks lines at them,
# and so does the email package when it writes a header).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# in settings that may span lines (printed in page and message bodies, never in a header)
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def _dns_name(value: Any) -> str | None:
    """A DKIM selector or signing domain: dot-separated labels of letters, digits, hyphens."""
    return (
        None if _DNS_NAME.fullmatch(value) else "a DNS name such as 'newsletter' or 'example.org'"
    )


def _optional_dns_name(value: Any) -> str | None:
    return None if value == "" else _dns_name(value)


def _between(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"an integer from {low} to {high}"

    return check


def _not_blank(value: Any) -> str | None:
    # feeds need a title and a description, and mail a From name: characters XML cannot
    # carry (dropped from feeds) do not count
    return None if xml_safe(str(value)).strip() else "a text that is not empty"


def _email(value: Any) -> str | None:
    return None if re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value) else "an email address"


def _optional_email(value: Any) -> str | None:
    return None if value == "" else _email(value)


def _mailbox_url(value: Any) -> str | None:
    if value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme in ("imap", "imaps", "pop3", "pop3s") and parts.hostname:
        return None
    return "imaps://user:password@host/INBOX, imap://..., pop3s://user:password@host or pop3://..."


@dataclass(frozen=True)
class SiteSettings:
    title: str = field(default="The Asia Ledger", metadata={"check": _not_blank})
    description: str = field(
        default="News and analysis on Asian affairs",
        metadata={"multiline": True, "check": _not_blank},
    )
    base_url: str = field(default="http://127.0.0.1:8000", metadata={"check": _http_url})
    language: str = field(default="en", metadata={"check": _language})
    timezone: str = field(default="Asia/Jakarta", metadata={"check": _timezone})
    privacy_url: str = field(default="", metadata={"check": _optional_http_url})

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class ServerSettings:
    access_log: bool = False


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = field(
        default="sqlite:///newsletter.db", metadata={"check": _db_url, "shown": redact_url}
    )


@dataclass(frozen=True)
class ArticlesSettings:
    max_body_bytes: int = field(default=2 * 1024 * 1024, metadata={"check": _between(1, 1 << 30)})


@dataclass(frozen=True)
class FeedsSettings:
    items: int = field(default=20, metadata={"check": _between(1, 1000)})
    websub_hub: str = field(default="", metadata={"check": _optional_http_url})
    max_age: int = field(default=300, metadata={"check": _between(0, 86400 * 7)})


@dataclass(frozen=True)
class MailSettings:
    transport: str = field(
        default="outbox", metadata={"check": _choice("outbox", "smtp", "memory")}
    )
    outbox_dir: str = "outbox"
    from_address: str = field(default="newsletter@localhost", metadata={"check": _email})
    from_name: str = ""
    dkim_key_file: str = ""
    dkim_ed25519_key_file: str = ""
    dkim_selector: str = field(default="newsletter", metadata={"check": _dns_name})
    dkim_ed25519_selector: str = field(default="", metadata={"check": _optional_dns_name})
    dkim_domain: str = field(default="", metadata={"check": _optional_dns_name})
    postal_address: str = field(default="", metadata={"multiline": True})


@dataclass(frozen=True)
class SubscribersSettings:
    confirm_hours: int = field(default=48, metadata={"check": _between(1, 24 * 30)})
    confirmations_per_hour: int = field(default=3, metadata={"check": _between(1, 100)})
    signups_per_ip_per_hour: int = field(default=60, metadata={"check": _between(1, 100000)})
    signups_per_address_per_hour: int = field(default=10, metadata={"check": _between(1, 1000)})


@dataclass(frozen=True)
class DigestsSettings:
    catch_up_hours: int = field(default=6, metadata={"check": _between(0, 24 * 365)})
    sync_seconds: int = field(default=5, metadata={"check": _between(1, 3600)})


@dataclass(frozen=True)
class DeliverySettings:
    retry_base_seconds: int = field(default=60, metadata={"check": _between(1, 86400)})
    max_attempts: int = field(default=5, metadata={"check": _between(1, 100)})
    lease_seconds: int = field(default=60, metadata={"check": _between(1, 86400)})
    claim_batch: int = field(default=500, metadata={"check": _between(1, 10000)})
    result_batch: int = field(default=50, metadata={"check": _between(1, 10000)})
    max_per_second: int = field(default=0, metadata={"check": _between(0, 1_000_000)})
    max_per_hour: int = field(default=0, metadata={"check": _between(0, 1_000_000_000)})
    relay_failures: int = field(default=5, metadata={"check": _between(1, 10000)})
    relay_rest_seconds: int = field(default=60, metadata={"check": _between(1, 86400)})


@dataclass(frozen=True)
class BouncesSettings:
    return_path: str = field(default="", metadata={"check": _optional_email})
    verp: bool = True
    mailbox: str = field(default="", metadata={"shown": redact_url, "check": _mailbox_url})
    poll_seconds: int = field(default=300, metadata={"check": _between(0, 86400)})
    soft_limit: int = field(default=3, metadata={"check": _between(1, 100)})
    ses_topic_arn: str = ""
    mailgun_signing_key: str = field(default="", metadata={"secret": True})
    postmark_password: str = field(default="", metadata={"secret": True})
    sendgrid_public_key: str = field(default="", metadata={"secret": True})


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = field(default=587, metadata={"check": _between(1, 65535)})
    security: str = field(
        default="starttls", metadata={"check": _choice("starttls", "tls", "none")}
    )
    username: str = ""
    password: str = field(default="", metadata={"secret": True})
    pool_size: int = field(default=4, metadata={"check": _between(1, 100)})
    timeout: int = field(default=30, metadata={"check": _between(1, 3600)})


@dataclass(frozen=True)
class RelaySettings(SmtpSettings):
    """One SMTP relay of several (`[[relay]]` tables: the [smtp] keys and these); without
    any, [smtp] is the one."""

    name: str = field(default="smtp", metadata={"check": _not_blank})
    weight: int = field(default=1, metadata={"check": _between(1, 1000)})
    # 0: the [delivery] value
    max_per_second: int = field(default=0, metadata={"check": _between(0, 1_000_000)})
    max_per_hour: int = field(default=0, metadata={"check": _between(0, 1_000_000_000)})


def _networks(value: Any) -> str | None:
    try:
        parse_networks(value)
    except ValueError:
        return "a comma-separated list of addresses or networks such as '127.0.0.1/8, ::1'"
    return None


def parse_networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """'127.0.0.1/8, ::1' -> its networks (host bits ignored); ValueError for a bad one."""
    return tuple(
        ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
    )


@dataclass(frozen=True)
class MetricsSettings:
    """GET /metrics: on, and the client addresses it answers (others get 404)."""

    enabled: bool = True
    allow: str = field(default="127.0.0.1/8, ::1", metadata={"check": _networks})

    @property
    def networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return parse_networks(self.allow)


@dataclass(frozen=True)
class SecuritySettings:
    secret_key: str = field(default="", metadata={"secret": True})


@dataclass(frozen=True)
class AdminSettings:
    username: str = "admin"
    password: str = field(default="", metadata={"secret": True})


@dataclass(frozen=True)
class Settings:
    """Everything config.toml says, with paths resolved against `root` (the config's folder)."""

    root: Path
    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    articles: ArticlesSettings = ArticlesSettings()
    feeds: FeedsSettings = FeedsSettings()
    mail: MailSettings = MailSettings()
    smtp: SmtpSettings = SmtpSettings()
    subscribers: SubscribersSettings = SubscribersSettings()
    digests: DigestsSettings = DigestsSettings()
    delivery: DeliverySettings = DeliverySettings()
    bounces: BouncesSettings = BouncesSettings()
    metrics: MetricsSettings = MetricsSettings()
    security: SecuritySettings = SecuritySettings()
    admin: AdminSettings = AdminSettings()
    server: ServerSettings = ServerSettings()
    relay: tuple[RelaySettings, ...] = ()

    @property
    def relays(self) -> tuple[RelaySettings, ...]:
        """The relays digests go through: the `[[relay]]` tables, else [smtp] alone; a
        relay's throttles default to [delivery]'s."""
        found = self.relay or (RelaySettings(**dataclasses.asdict(self.smtp)),)
        return tuple(
            dataclasses.replace(
                r,
                max_per_second=r.max_per_second or self.delivery.max_per_second,
                max_per_hour=r.max_per_hour or self.delivery.max_per_hour,
            )
            for r in found
        )

    @property
    def return_path(self) -> str:
        """The envelope sender bounces go back to (before VERP adds a tag)."""
        domain = self.mail.from_address.rpartition("@")[2] or "localhost"
        return self.bounces.return_path or f"bounces@{domain}"

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute against `root`."""
        url = self.database.url
        prefix = re.match(r"sqlite(\+\w+)?:///", url)
        if prefix and not url.endswith(":memory:"):
            path = url[prefix.end() :]
            if path and not Path(path).is_absolute():
                return prefix.group(0) + str(self.root / path)
        return url

    @property
    def outbox_path(self) -> Path:
        return self.root / self.mail.outbox_dir

    @property
    def base_url(self) -> str:
        return self.site.base_url.rstrip("/")

    @functools.cached_property
    def secret(self) -> bytes:
        """The signing secret; an empty setting reads (or creates) root/.secret_key."""
        if self.security.secret_key:
            return self.security.secret_key.encode()
        path = self.root / SECRET_FILE
        if not path.exists():
            # Written privately under another name, then linked into place: two processes
            # starting at once agree on one secret and nobody reads a half-written file.
            temporary = path.with_name(f"{SECRET_FILE}.{secrets.token_hex(8)}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
            finally:
                temporary.unlink()
        return path.read_text().strip().encode()


_SECTIONS: dict[str, type] = {
    f.name: f.type if isinstance(f.type, type) else globals()[str(f.type)]
    for f in dataclasses.fields(Settings)
    if f.name not in ("root", "relay")
}
_ARRAYS: dict[str, type] = {"relay": RelaySettings}  # [[relay]] tables


def _shown(f: dataclasses.Field[Any], value: Any) -> str:
    """`value` as a message may show it: secrets hidden, passwords in URLs masked."""
    if f.metadata.get("secret"):
        return "(hidden)"
    if isinstance(value, str) and "shown" in f.metadata:
        return repr(f.metadata["shown"](value))
    return repr(value)


def _coerce(section: str, f: dataclasses.Field[Any], raw: Any, target: type, env: bool) -> Any:
    key = f.name
    where = (
        f"environment variable {ENV_PREFIX}{section.upper()}__{key.upper()}"
        if env
        else (f"[{section}] {key}")
    )
    shown = _shown(f, raw)
    if target is int:
        if env and isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
            return int(raw)
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise ConfigError(f"{where} = {shown} is not allowed: expected an integer")
    if target is bool:
        if isinstance(raw, bool):
            return raw
        if env and str(raw).lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return str(raw).lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where} = {shown} is not allowed: expected true or false")
    if not isinstance(raw, str):
        raise ConfigError(f"{where} = {shown} is not allowed: expected a string")
    return raw


def _control_characters(f: dataclasses.Field[Any], value: str) -> str | None:
    """What is allowed instead, when `value` has characters no setting may carry: strings
    end up in mail headers, SMTP commands, HTTP headers and file names, where a line break
    starts a new header or command."""
    if f.metadata.get("multiline"):
        if _CONTROL_BUT_LINES.search(value):
            return "text without control characters (line breaks are allowed)"
    elif _CONTROL.search(value):
        return "text on one line, without control characters (CR, LF, tab, NUL...)"
    return None


def _build_section(name: str, cls: type, values: Mapping[str, Any], env_keys: set[str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key [{name}] {key}; allowed keys in [{name}]: " + ", ".join(fields)
            )
        f = fields[key]
        target = (
            f.type
            if isinstance(f.type, type)
            else {"int": int, "str": str, "bool": bool}[str(f.type)]
        )
        value = _coerce(name, f, raw, target, key in env_keys)
        allowed = _control_characters(f, value) if isinstance(value, str) else None
        check: Check | None = f.metadata.get("check")
        if not allowed and check:
            allowed = check(value)
        if allowed:
            raise ConfigError(
                f"[{name}] {key} = {_shown(f, value)} is not allowed: expected {allowed}"
            )
        kwargs[key] = value
    return cls(**kwargs)


def load(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `path` (default ./config.toml) and the environment.

    A missing default file means built-in defaults; a missing explicit file is an error.
    Raises ConfigError for unreadable TOML, unknown sections or keys and invalid values.
    """
    environ = os.environ if environ is None else environ
    explicit = path is not None
    cfg_path = Path(path) if path is not None else Path("config.toml")
    data: dict[str, Any] = {}
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{cfg_path}: not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset "
                f"{exc.start}); TOML files are UTF-8: save it in that encoding"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{cfg_path}: cannot read: {exc.strerror}") from None
    elif explicit:
        raise ConfigError(
            f"{cfg_path}: no such configuration file (create one with newsletter init)"
        )

    relays: list[RelaySettings] = []
    for name, values in data.items():
        if name in _ARRAYS:
            if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                raise ConfigError(f"[[{name}]] must be tables written [[{name}]], not {values!r}")
            relays.extend(_build_section(name, _ARRAYS[name], v, set()) for v in values)
            continue
        if name not in _SECTIONS:
            raise ConfigError(
                f"unknown section [{name}]; allowed: " + ", ".join([*_SECTIONS, *_ARRAYS])
            )
        if not isinstance(values, dict):
            raise ConfigError(f"[{name}] must be a table of keys, not {values!r}")

    env_keys: dict[str, set[str]] = {name: set() for name in _SECTIONS}
    merged: dict[str, dict[str, Any]] = {name: dict(data.get(name, {})) for name in _SECTIONS}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var[len(ENV_PREFIX) :]:
            continue
        section, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            raise ConfigError(
                f"environment variable {var} names unknown section [{section}]; allowed: "
                + ", ".join(_SECTIONS)
            )
        merged[section][key] = value
        env_keys[section].add(key)

    sections = {
        name: _build_section(name, cls, merged[name], env_keys[name])
        for name, cls in _SECTIONS.items()
    }
    names = [r.name for r in relays]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[relay]] names must differ; given {names}")
    return Settings(root=cfg_path.resolve().parent, relay=tuple(relays), **sections)


def write_fresh_config(directory: Path) -> Path:
    """Write a commented config.toml with a random secret into `directory`.

    Raises ConfigError if one is already there, so nobody's secret is overwritten.
    """
    target = directory / "config.toml"
    text = sample_config_path().read_text(encoding="utf-8")
    text, count = re.subn(
        r'^secret_key = ""$', f'secret_key = "{secrets.token_urlsafe(32)}"', text, flags=re.M
    )
    if count != 1:
        raise ConfigError("the sample config has no empty secret_key line to fill in")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot create the folder: {exc.strerror}") from None
    try:
        # private from its first byte; O_EXCL refuses an existing file and O_NOFOLLOW a
        # symlink planted in its place (even a dangling one), so no secret goes elsewhere
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ConfigError(f"{target} already exists; not overwriting it") from None
    except OSError as exc:
        raise ConfigError(f"{target}: cannot create it: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        target.unlink()  # a half-written config would block the next `newsletter init`
        raise
    return target
