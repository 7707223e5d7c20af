"""The configuration of hepcat.

Every setting is declared once, in :data:`SETTINGS`, with its name, type,
default and help text; the command line, the documentation page
(``docs/configuration.md``) and validation all read that declaration.

Values stack up in this order, each overriding the one before:

1. the defaults declared here (the *embedded default*: SQLite files under one
   data directory, no server to install);
2. a TOML configuration file (``--config FILE``, ``HEPCAT_CONFIG``, or
   ``hepcat.toml`` in the data directory when it exists);
3. ``HEPCAT_*`` environment variables (``HEPCAT_DATABASE_URL``, ...).

Nothing is read at import time: :func:`load_config` reads when called, and
every part of hepcat takes a :class:`Config` explicitly.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from catalog.errors import ConfigError, UnknownSetting
from catalog.urls import HIDDEN, hide_password

ENV_PREFIX = "HEPCAT_"


@dataclass(frozen=True)
class Setting:
    """The declaration of one setting.

    :param secret: whether its whole value is a secret, never shown (the
        password in a URL is hidden in any setting).
    """

    name: str
    help: str
    default: Any = None
    type: Callable[[Any], Any] = str
    shown_default: str | None = None
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper().replace(".", "__")


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _paths(text: str) -> tuple[str, ...]:
    if isinstance(text, list | tuple):
        return tuple(str(p) for p in text)
    return tuple(p for p in str(text).split(os.pathsep) if p)


def _url(text: str) -> str:
    """A SQLAlchemy URL whose dialect and driver can be loaded (parsed
    without connecting).
    """
    try:
        url = make_url(str(text))
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        reason = f"SQLAlchemy knows no database dialect or driver {url.drivername!r}"
        raise ValueError(reason) from None
    except ArgumentError:
        raise ValueError("not a SQLAlchemy URL (dialect+driver://...)") from None
    except ValueError:  # SQLAlchemy's int() of the port
        raise ValueError("its port is not a number") from None
    except ImportError as err:
        from catalog.db import driver_hint  # only for this message

        hint = driver_hint(str(text))
        reason = f"its database driver cannot be loaded ({err}){hint}"
        raise ValueError(reason) from None
    return str(text)


@dataclass(frozen=True)
class Address:
    """A server's address as a setting gives it."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class AddressForm:
    """The addresses a setting takes: ``scheme://[user:password@]host:port``
    with one of *schemes*, or ``host:port`` for the first. Checked without
    contacting anything.

    :param default_port: the port of an address without one (None: the port
        is required).
    :param shown: the form as a message states it.
    """

    schemes: tuple[str, ...]
    default_port: int | None
    shown: str

    def parse(self, text: str) -> Address:
        """Read *text*; :raises ValueError: it is not of this form."""
        parts = urlsplit(text if "://" in text else f"{self.schemes[0]}://{text}")
        try:
            port = self.default_port if parts.port is None else parts.port
        except ValueError:  # not a number, or out of 0-65535
            port = None
        host = parts.hostname if parts.scheme in self.schemes else None
        extra = parts.path.strip("/") or parts.query or parts.fragment
        if not host or not port or extra:
            raise ValueError(f"expected {self.shown}")
        user, password = _unquoted(parts.username), _unquoted(parts.password)
        return Address(parts.scheme, host, port, user, password)

    def __call__(self, value: Any) -> str | None:
        """The converter of a setting: *value* checked; empty is unset."""
        text = str(value).strip()
        if text:
            self.parse(text)
        return text or None


def _unquoted(text: str | None) -> str | None:
    return unquote(text) if text else None


#: The DDM broker: plain STOMP (the DDM ingester does not speak TLS), port
#: 61613 by default.
STOMP_BROKER = AddressForm(("stomp", "tcp"), 61613, "stomp://host:port")
#: A Dask scheduler, as ``distributed.Client`` takes it: the port is needed.
DASK_SCHEDULER = AddressForm(
    ("tcp", "tls", "ws", "wss"), None, "tcp://host:port or host:port"
)


_NAME_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:@"
)


def _stomp_name(value: Any) -> str | None:
    """A client id or subscription name for the STOMP broker: letters,
    digits and ``. _ - : @``, at most 200; empty is unset.
    """
    text = str(value).strip()
    if len(text) > 200 or not set(text) <= _NAME_CHARACTERS:
        raise ValueError("expected letters, digits and . _ - : @ (at most 200)")
    return text or None


_HOST_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:_[]"
)


def _host(value: Any) -> str:
    """A host name or IP address to listen on, checked for its form only
    (whether it resolves is seen when a server starts).
    """
    text = str(value).strip()
    if not text or len(text) > 253 or not set(text) <= _HOST_CHARACTERS:
        raise ValueError("expected a host name or IP address, e.g. 127.0.0.1")
    return text


def _http_url(value: Any) -> str | None:
    """An http:// or https:// URL with a host; empty is unset."""
    text = str(value).strip()
    if not text:
        return None
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 -- raises on a port out of range
    except ValueError:
        raise ValueError("its port is not a number from 0 to 65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected http://host:port/path or https://...")
    return text


#: The fewest characters of a key signing sessions and CSRF tokens, set or
#: kept in a file (web/secretkey.py).
SECRET_KEY_MIN_LENGTH = 32


def _check_secret_key(config: Config) -> None:
    """Refuse a ``secret_key`` the file or environment sets that is shorter
    than :data:`SECRET_KEY_MIN_LENGTH`: it would sign sessions and CSRF
    tokens that anyone could forge. (Code, as tests, may set a short one.)
    """
    key = config.values["secret_key"]
    if key and len(key) < SECRET_KEY_MIN_LENGTH:
        reason = (
            f"it has {len(key)} characters, fewer than {SECRET_KEY_MIN_LENGTH}; "
            "use a long random one (python -c 'import secrets; "
            "print(secrets.token_hex(32))'), or unset it for hepcat to keep one "
            f"in the data directory; {config.origin('secret_key')}"
        )
        raise ConfigError("secret_key", HIDDEN, reason)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _level(text: str) -> str:
    level = str(text).strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)} (any case)")
    return level


def _within(
    low: float,
    high: float = math.inf,
    kind: Callable[[Any], Any] = float,
    *,
    above: bool = False,
) -> Callable[[Any], Any]:
    """A converter to *kind* that refuses a value out of [*low*, *high*]
    (*low* itself too when *above*), and anything not finite.
    """
    lowest = f"greater than {low}" if above else f"at least {low}"
    wanted = f"a number {lowest}" + (f" and at most {high}" if high < math.inf else "")

    def convert(value: Any) -> Any:
        number = kind(value)
        out = number <= low if above else number < low
        if not math.isfinite(number) or out or number > high:
            raise ValueError(f"expected {wanted}")
        return number

    return convert


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "Where the embedded default keeps its files.", "./hepcat-data"),
    Setting(
        "database_url",
        "The catalogue database, as a SQLAlchemy URL "
        "(e.g. postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db, "
        "oracle+oracledb://user:pw@host/?service_name=S).",
        type=_url,
        shown_default="sqlite:///<data_dir>/catalog.sqlite",
    ),
    Setting(
        "prodsys_url",
        "The ProdSys database (SQLAlchemy URL); unset: the ProdSys ingester is off.",
        type=_url,
    ),
    Setting(
        "tier0_url",
        "The Tier-0 database (SQLAlchemy URL); unset: the Tier-0 ingester is off.",
        type=_url,
    ),
    Setting(
        "coma_url",
        "The COMA database (SQLAlchemy URL); unset: the COMA ingester is off.",
        type=_url,
    ),
    Setting(
        "ddm_broker",
        "The DDM STOMP broker, as stomp://host:port (port 61613 when left out); "
        "unset: the DDM ingester is off.",
        type=STOMP_BROKER,
    ),
    Setting(
        "ddm_destination",
        "The STOMP destination DDM publishes its events to.",
        "/topic/rucio.events",
    ),
    Setting(
        "ddm_client_id",
        "The client id the DDM ingester connects to the broker with; the "
        "broker keeps its durable subscription, and the messages published "
        "while hepcat is stopped, under this id and ddm_subscription. Every "
        "task server of one catalogue must use the same one, and no other "
        "catalogue (or demo, or test) may. Unset: chosen once and stored in "
        "the catalogue: 'hepcat' for a catalogue that ingested DDM before "
        "this setting existed (its subscription carries on), else derived "
        "from the catalogue database (docs/ddm.md). Set, it wins over the "
        "stored one.",
        type=_stomp_name,
        shown_default="chosen once per catalogue and stored in it",
    ),
    Setting(
        "ddm_subscription",
        "The name of the DDM ingester's durable subscription on the broker, "
        "under ddm_client_id.",
        "hepcat-ddm",
        _stomp_name,
    ),
    Setting(
        "storage_root",
        "Root of the local file store laid out as Rucio deterministic paths.",
        shown_default="the data directory",
    ),
    Setting(
        "pool_file_catalogs",
        "PoolFileCatalog.xml files consulted, in order, to find event files "
        f"(separated by {os.pathsep!r}).",
        (),
        _paths,
    ),
    Setting(
        "dask_scheduler",
        "The Dask distributed scheduler skims extract on, as tcp://host:port "
        "(or tls://, ws://, wss://; host:port is tcp), e.g. tcp://host:8786; "
        "unset: a pool of local processes.",
        type=DASK_SCHEDULER,
    ),
    Setting(
        "skim_dir",
        "Where skims keep their event collections and output files.",
        shown_default="<data_dir>/skims",
    ),
    Setting(
        "prodsys_safety_lag",
        "Seconds a ProdSys row's timestamp may lag behind its commit; the "
        "ProdSys ingester re-reads this window so that late rows are caught.",
        120.0,
        _within(0),
    ),
    Setting(
        "taskserver_workers",
        "Worker threads of 'hepcat taskserver' (runs at the same time).",
        8,
        _within(1, kind=int),
    ),
    Setting(
        "taskserver_lease_seconds",
        "Seconds a task-server instance holds a task's lease without renewing "
        "it; a dead instance's tasks are taken over after this (at least 1: "
        "a shorter lease runs out between two renewals).",
        30.0,
        _within(1),
    ),
    Setting(
        "host",
        "The address 'hepcat serve' listens on (a host name or IP address).",
        "127.0.0.1",
        _host,
    ),
    Setting(
        "port",
        "The port 'hepcat serve' and 'hepcat demo' listen on (1-65535); their "
        "--port overrides it (out of range there: a usage error, exit status 2).",
        5000,
        _within(1, 65535, int),
    ),
    Setting(
        "ami_url",
        "The AMI endpoint 'hepcat ami' sends commands to; unset: the endpoint "
        "of 'hepcat serve' at the host and port settings.",
        type=_http_url,
        shown_default="http://<host>:<port>/AMI/FrontEnd",
    ),
    Setting(
        "secret_key",
        "Key signing web sessions and CSRF tokens, at least "
        f"{SECRET_KEY_MIN_LENGTH} characters; unset: a random key is made and "
        "kept in the data directory.",
        secret=True,
    ),
    Setting(
        "anonymous_read",
        "Whether pages, the API and the AMI endpoint answer read requests "
        "without login.",
        True,
        _bool,
    ),
    Setting(
        "session_hours",
        "Hours a login on the pages lasts; 0: until the browser closes or the "
        "user logs out.",
        12.0,
        _within(0),
    ),
    Setting(
        "secure_cookies",
        "Whether the login cookie is marked Secure, so that browsers send it "
        "over HTTPS only; set it when hepcat is served over HTTPS (as behind a "
        "TLS proxy), where a login over plain HTTP would then not hold.",
        False,
        _bool,
    ),
    Setting(
        "max_upload_mb",
        "The largest request body the pages and the JSON API take, in MB "
        "(event collections uploaded for skims); a larger one is refused with "
        "HTTP 413 and a message giving the limit, before it is read (one sent "
        "in chunks, without a Content-Length, once reading it reaches the "
        "limit). The AMI endpoint keeps its own limit of 500 kB (500,000 bytes) "
        "on the whole body, a multipart body's files included: over it, it "
        "answers AMI's `CommandTooLong` error (`docs/ami.md`).",
        256.0,
        _within(0, above=True),
    ),
    Setting(
        "trusted_dn_header",
        "The request header in which a reverse proxy hands over the verified "
        "X.509 client-certificate DN (e.g. X-SSL-Client-S-DN), mapped to the "
        "user with that DN; unset: off. Set it only behind a proxy that removes "
        "any copy of the header a client sends.",
    ),
    Setting(
        "log_level",
        "The log level of hepcat's loggers (DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL; any case).",
        "INFO",
        _level,
    ),
)

_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def declared() -> tuple[Setting, ...]:
    """Return every declared setting, in declaration order."""
    return SETTINGS


def shown_value(setting: Setting, value: Any) -> Any:
    """*value* of *setting* as output may show it: a secret setting's value
    as ``***``, and the password of a URL hidden.
    """
    if setting.secret and value:
        return HIDDEN
    return hide_password(value) if isinstance(value, str) else value


def documented_default(setting: Setting) -> str:
    """Return the default of *setting* as the documentation shows it."""
    if setting.shown_default is not None:
        return setting.shown_default
    if setting.default is None or setting.default == ():
        return "none"
    if isinstance(setting.default, bool):
        return str(setting.default).lower()
    return str(setting.default)


@dataclass(frozen=True)
class Config:
    """The settings in force, after defaults, file and environment."""

    values: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data_path(self) -> Path:
        return Path(self.values["data_dir"]).expanduser().resolve()

    @property
    def catalog_url(self) -> str:
        url = self.values.get("database_url")
        return url or f"sqlite:///{self.data_path / 'catalog.sqlite'}"

    @property
    def storage_path(self) -> Path:
        root = self.values.get("storage_root")
        return Path(root).expanduser().resolve() if root else self.data_path

    def origin(self, name: str) -> str:
        """Where the value of setting *name* came from, for a message."""
        return origin(_BY_NAME[name], self.sources.get(name, "default"))

    def replace(self, **changes: Any) -> Config:
        """Return a copy with *changes* applied (validated like any value)."""
        values = dict(self.values)
        sources = dict(self.sources)
        for name, value in changes.items():
            values[name] = _convert(_setting(name, "Config.replace"), value, "code")
            sources[name] = "code"
        return Config(values, sources)


def _setting(name: str, where: str) -> Setting:
    try:
        return _BY_NAME[name]
    except KeyError:
        near = difflib.get_close_matches(name, _BY_NAME, n=2)
        raise UnknownSetting(name, where, near) from None


def origin(setting: Setting, where: str) -> str:
    """Where a value of *setting* read from *where* (a layer of
    :func:`load_config`) was set, as a message says it.
    """
    if where.startswith("environment"):
        return f"set in the environment as {setting.env}"
    if where in ("default", "code", "command line"):
        return f"set by the {where}" if where != "code" else "set in code"
    return f"set in {where}"


def _convert(setting: Setting, value: Any, where: str) -> Any:
    if value is None or (isinstance(value, str) and setting.type is str):
        return value
    try:
        return setting.type(value)
    except (TypeError, ValueError) as err:
        reason = f"{err}; {origin(setting, where)}"
        raise ConfigError(setting.name, _shown(setting, value), reason) from None


def _shown(setting: Setting, value: Any) -> Any:
    """*value* as an error message may quote it: never a secret's."""
    return HIDDEN if setting.secret else value


#: The names of TOML's types, as a message says them.
_TOML_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _toml_types(setting: Setting) -> tuple[type, ...]:
    """The TOML types a file may give *setting*, read from its default: a
    number of seconds takes an integer too, a list of paths a string too.
    """
    default = setting.default
    if isinstance(default, bool | int):
        return (type(default),)
    if isinstance(default, float):
        return (float, int)
    if isinstance(default, tuple):
        return (list, str)
    return (str,)


def _check_toml_types(layer: Mapping[str, Any], where: str) -> None:
    """Refuse a value of *layer*, read from the file *where*, whose TOML type
    is not its setting's: ``port = 5000.7`` is not read as 5000.
    """
    for name, value in layer.items():
        setting = _setting(name, where)
        wanted = _toml_types(setting)
        if type(value) not in wanted:
            got = _TOML_TYPES.get(type(value), type(value).__name__)
            expected = " or ".join(_TOML_TYPES[kind] for kind in wanted)
            reason = f"expected {expected}, not {got}; set in {where}"
            raise ConfigError(name, _shown(setting, value), reason)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError("config", str(path), _unreadable(err)) from None
    layer = _flatten(_hepcat_table(raw, path))
    _check_toml_types(layer, str(path))
    return layer


def _unreadable(err: Exception) -> str:
    """Why a configuration file cannot be read, as a message says it."""
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, IsADirectoryError):
        return "it is a directory; name a TOML file"
    if isinstance(err, UnicodeDecodeError):
        return (
            f"not UTF-8 text (byte {err.start}); a TOML file is UTF-8: save it as such"
        )
    if isinstance(err, tomllib.TOMLDecodeError):
        return f"not valid TOML: {err}"
    return f"it cannot be read: {getattr(err, 'strerror', None) or err}"


def _hepcat_table(raw: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    """The settings of a file: its ``[hepcat]`` table, or its top level when
    it has none. A file with both would have one half ignored: refused.
    """
    if "hepcat" not in raw:
        return raw
    beside = sorted(key for key in raw if key != "hepcat")
    if beside or not isinstance(raw["hepcat"], Mapping):
        where = ", ".join(beside) if beside else "hepcat (not a table)"
        reason = (
            f"it has settings outside its [hepcat] table ({where}); put them "
            "all under [hepcat], or remove the [hepcat] line"
        )
        raise ConfigError("config", str(path), reason)
    return raw["hepcat"]


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _from_environment(env: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in _NOT_SETTINGS:
            continue
        name = key[len(ENV_PREFIX) :].lower().replace("__", ".")
        found[name] = value
    return found


# HEPCAT_* variables that are not settings: the config file's location, the
# API token 'hepcat ami' sends (a user's credential, not a site's setting), and
# the variables the test suite reads.
_NOT_SETTINGS = frozenset({"HEPCAT_CONFIG", "HEPCAT_TOKEN"})


def _is_test_variable(key: str) -> bool:
    return key.startswith("HEPCAT_TEST_")


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Read the configuration: defaults, then the file, then the environment.

    :param path: a TOML file; without it ``HEPCAT_CONFIG`` names one, or
        ``hepcat.toml`` in the data directory is read when it exists.
    :param env: the environment to read (default :data:`os.environ`).
    :param overrides: values that win over everything (used by the CLI's
        options and by tests).
    :raises UnknownSetting: a file or variable names no declared setting.
    :raises ConfigError: a file cannot be read, or a value cannot be
        converted (or is of the wrong type in the file).
    """
    env = dict(os.environ if env is None else env)
    env = {k: v for k, v in env.items() if not _is_test_variable(k)}
    values = {s.name: s.default for s in declared()}
    sources = dict.fromkeys(values, "default")
    from_env = _from_environment(env)
    layers = _file_layer(path, env, from_env, overrides)
    layers.append((f"environment ({ENV_PREFIX}*)", from_env))
    layers.append(
        ("command line", {k: v for k, v in overrides.items() if v is not None})
    )
    for where, layer in layers:
        for name, value in layer.items():
            values[name] = _convert(_setting(name, where), value, where)
            sources[name] = where
    config = Config(values, sources)
    _check_secret_key(config)
    return config


def _file_layer(
    path: str | Path | None,
    env: Mapping[str, str],
    from_env: Mapping[str, str],
    overrides: Mapping[str, Any],
) -> list[tuple[str, dict[str, Any]]]:
    explicit = path or env.get("HEPCAT_CONFIG")
    if explicit:
        return [(str(explicit), _read_file(Path(explicit)))]
    data_dir = overrides.get("data_dir") or from_env.get("data_dir") or "./hepcat-data"
    candidate = Path(data_dir).expanduser() / "hepcat.toml"
    if candidate.is_file():
        return [(str(candidate), _read_file(candidate))]
    return []
