"""Settings: the frozen :class:`Config`, built from flags, config.toml and built-in defaults.

Precedence is command-line flags > config file > built-in defaults. The config file is the one
given with ``--config PATH``, else ``./config.toml`` when it exists, else none. Every value,
whichever source it came from, goes through the same checks (:func:`_convert`), so a bad value
gets the same explanation from a flag (``--max-pages must be >= 1, got 0``) as from the file
(``config.toml: max_pages must be >= 1, got 0``).

Paths in Config (``seed_file``, ``db``, ``images``) are kept as written: a relative path is
relative to the current directory, whether it came from a flag or from the file.

The file's top-level tables (``[images]``, ``[audit]``, ...) are not checked here: they are
handed to the plugins, read-only, in :attr:`Config.plugin_settings`. The one exception is
``images``, which may be written either as ``images = "DIR"`` or as an ``[images]`` table whose
``dir`` key is that directory (TOML allows only one of the two).
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, NoReturn

import yarl

from crawler.errors import ConfigError, SeedError
from crawler.urls import SCOPE_MODES, ScopeMode, normalize_url

__all__ = [
    "CONFIG_FILE_NAME",
    "CONFIG_KEYS",
    "DEFAULT_USER_AGENT",
    "Config",
    "load_config",
    "load_file_config",
    "parse_args",
    "read_seeds",
]

DEFAULT_USER_AGENT: Final = "crawler/0.1 (+https://github.com/crawler/crawler)"
CONFIG_FILE_NAME: Final = "config.toml"


def _freeze(value: Any) -> Any:
    """A read-only copy of a TOML value: tables become mappingproxies, arrays tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    """Plain dicts and lists again, for a readable repr."""
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


def _product_token(user_agent: str) -> str:
    words = user_agent.split()
    return words[0].split("/", 1)[0].lower() if words else ""


@dataclass(frozen=True, slots=True, repr=False)
class Config:
    """Everything one crawl needs to know; built by :func:`load_config`, never mutated."""

    seed_file: Path | None = None
    db: Path = Path("crawl.db")
    max_pages: int | None = None
    max_depth: int | None = None
    concurrency: int = 32
    per_host: int = 8
    delay: float = 0.0
    scope: ScopeMode = "host"
    plugins: tuple[str, ...] = ()
    images: Path | None = None
    resume: bool = False
    quiet: bool = False
    timeout: float = 30.0
    user_agent: str = DEFAULT_USER_AGENT
    retries: int = 3
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 10
    respect_robots: bool = True
    workers: int | None = None
    frontier: str | None = None
    name: str = "crawl"
    lease_timeout: float = 30.0
    redis_wait: float = 60.0
    adaptive: bool = True
    plugin_settings: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    config_path: Path | None = None

    def __post_init__(self) -> None:
        for name in _RULES:
            try:
                value = _convert(name, getattr(self, name))
            except _Invalid as exc:
                raise ConfigError(f"{name} {exc.reason}") from None
            object.__setattr__(self, name, value)
        object.__setattr__(self, "plugin_settings", _freeze(self.plugin_settings))

    @property
    def robots_token(self) -> str:
        """The robots.txt product token: the user agent's first word up to "/", lowercase."""
        return _product_token(self.user_agent)

    def __repr__(self) -> str:
        parts = []
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.default is not MISSING:
                default = spec.default
            elif spec.default_factory is not MISSING:
                default = spec.default_factory()
            else:  # pragma: no cover - every field has a default
                default = MISSING
            if value != default:
                parts.append(f"{spec.name}={_repr_value(value)}")
        return f"Config({', '.join(parts)})"


def _repr_value(value: Any) -> str:
    if isinstance(value, Path):
        return repr(str(value))
    if isinstance(value, Mapping):
        return repr(_thaw(value))
    return repr(value)


# --------------------------------------------------------------------------- checking values

Kind = Literal[
    "int", "float", "bool", "str", "path", "scope", "plugins", "user_agent", "frontier", "name"
]


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: Kind
    minimum: float | None = None
    strict_minimum: bool = False  # "> minimum" rather than ">= minimum"
    optional: bool = False  # None allowed (Config only: TOML has no null, flags default to it)


# The settings that come from config.toml or flags; their names are the config.toml keys.
_RULES: Final[dict[str, _Rule]] = {
    "db": _Rule("path"),
    "max_pages": _Rule("int", 1, optional=True),
    "max_depth": _Rule("int", 0, optional=True),
    "concurrency": _Rule("int", 1),
    "per_host": _Rule("int", 1),
    "delay": _Rule("float", 0),
    "scope": _Rule("scope"),
    "plugins": _Rule("plugins"),
    "images": _Rule("path", optional=True),
    "timeout": _Rule("float", 0, strict_minimum=True),
    "user_agent": _Rule("user_agent"),
    "retries": _Rule("int", 1),
    "max_bytes": _Rule("int", 1),
    "max_redirects": _Rule("int", 0),
    "respect_robots": _Rule("bool"),
    "workers": _Rule("int", 0, optional=True),
    "frontier": _Rule("frontier", optional=True),
    "name": _Rule("name"),
    "lease_timeout": _Rule("float", 0, strict_minimum=True),
    "redis_wait": _Rule("float", 0),
    "adaptive": _Rule("bool"),
}

CONFIG_KEYS: Final[frozenset[str]] = frozenset(_RULES)
"""The top-level keys config.toml accepts (tables aside)."""

_COMMAND_LINE_ONLY: Final = {"resume": "--resume", "quiet": "--quiet", "config": "--config"}
_FLAG_FOR: Final = {
    "plugins": "--plugin",
    "respect_robots": "--no-robots",
    "adaptive": "--fixed-concurrency",
}


class _Invalid(Exception):
    """A value broke its rule; ``reason`` completes the sentence "<setting> <reason>"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _show(value: Any) -> str:
    """A value as the user wrote it: TOML spelling for booleans, repr otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return repr(str(value))
    return repr(value)


def _convert(name: str, value: Any) -> Any:
    """Check one setting against its rule and return it in its Config form, or raise _Invalid."""
    rule = _RULES[name]
    if value is None and rule.optional:
        return None
    got = f"got {_show(value)}"
    match rule.kind:
        case "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Invalid(f"must be an integer, {got}")
            result: Any = value
        case "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _Invalid(f"must be a number, {got}")
            if not math.isfinite(value):
                raise _Invalid(f"must be a finite number, {got}")
            result = float(value)
        case "bool":
            if not isinstance(value, bool):
                raise _Invalid(f"must be true or false, {got}")
            return value
        case "path":
            if isinstance(value, Path):
                return value
            if not isinstance(value, str):
                raise _Invalid(f"must be a path (a string), {got}")
            if not value.strip():
                raise _Invalid(f"must not be empty, {got}")
            return Path(value)
        case "scope":
            if value not in SCOPE_MODES:
                allowed = ", ".join(repr(scope) for scope in SCOPE_MODES)
                raise _Invalid(f"must be one of {allowed}, {got}")
            return value
        case "plugins":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise _Invalid(f"must be a list of plugin names (strings), {got}")
            names = tuple(value)
            for index, plugin in enumerate(names):
                if not plugin.strip():
                    raise _Invalid(f"must not contain an empty plugin name, {got}")
                if plugin in names[:index]:
                    raise _Invalid(f"lists {plugin!r} twice, {got}")
            return names
        case "user_agent":
            if not isinstance(value, str):
                raise _Invalid(f"must be a string, {got}")
            if not value.strip():
                raise _Invalid(f"must not be empty, {got}")
            if any(ord(char) < 32 or ord(char) == 127 for char in value):
                raise _Invalid(f"must not contain control characters, {got}")
            if not _product_token(value):
                raise _Invalid(f"must start with a product token such as 'mybot/1.0', {got}")
            return value
        case "frontier":
            return _frontier_url(value, got)
        case "name":
            if not isinstance(value, str):
                raise _Invalid(f"must be a string, {got}")
            if not _NAME_RE.fullmatch(value):
                raise _Invalid(
                    f"must be 1-64 letters, digits, '.', '_' or '-' (a Redis key part), {got}"
                )
            return value
    if rule.minimum is not None:
        if rule.strict_minimum and not result > rule.minimum:
            raise _Invalid(f"must be > {rule.minimum:g}, {got}")
        if not rule.strict_minimum and not result >= rule.minimum:
            raise _Invalid(f"must be >= {rule.minimum:g}, {got}")
    return result


_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
FRONTIER_SCHEMES: Final = ("redis", "rediss")


def _frontier_url(value: Any, got: str) -> str:
    """A ``redis://HOST:PORT/DB`` URL, checked for shape only (reachability is checked later)."""
    if not isinstance(value, str):
        raise _Invalid(f"must be a redis://HOST:PORT/DB URL, {got}")
    try:
        url = yarl.URL(value)
        url.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise _Invalid(f"must be a redis://HOST:PORT/DB URL, {got}") from None
    if url.scheme not in FRONTIER_SCHEMES or not url.host:
        raise _Invalid(f"must be a redis://HOST:PORT/DB URL, {got}")
    database = url.path.strip("/")
    if database and not database.isdigit():
        raise _Invalid(f"must name a database number after the port (redis://HOST:PORT/0), {got}")
    return value


# --------------------------------------------------------------------------- command line


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that raises ConfigError instead of printing usage and exiting 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def _build_parser() -> _ArgumentParser:
    defaults = Config()
    parser = _ArgumentParser(
        prog="python -m crawler",
        description="Crawl the sites in SEED_FILE into a SQLite database.",
        epilog=(
            "Flags override config.toml (./config.toml, or --config PATH), which overrides "
            "the built-in defaults."
        ),
        allow_abbrev=False,
    )
    add = parser.add_argument
    add("seed_file", metavar="SEED_FILE", help="file of URLs to start from, one per line")
    add("--config", metavar="PATH", help="config file to read instead of ./config.toml")
    add("--db", metavar="PATH", help=f"SQLite database to write (default: {defaults.db})")
    add("--max-pages", type=int, metavar="N", help="request at most N pages (default: no limit)")
    add(
        "--max-depth",
        type=int,
        metavar="N",
        help="follow links up to depth N; the seeds are depth 0 (default: no limit)",
    )
    add(
        "--concurrency",
        type=int,
        metavar="N",
        help=f"requests in flight in all (default: {defaults.concurrency})",
    )
    add(
        "--per-host",
        type=int,
        metavar="N",
        help=f"requests in flight to one host (default: {defaults.per_host})",
    )
    add(
        "--delay",
        type=float,
        metavar="SECONDS",
        help=f"least time between request starts to one host (default: {defaults.delay:g})",
    )
    add(
        "--scope",
        metavar="{" + ",".join(SCOPE_MODES) + "}",
        help=f"links to follow: seed hosts, their domains, or any (default: {defaults.scope})",
    )
    add(
        "--plugin",
        dest="plugins",
        action="append",
        metavar="NAME",
        help="run this plugin (repeat for more, in order); replaces config.toml's plugins list",
    )
    add("--images", metavar="DIR", help="directory for downloaded images")
    add("--resume", action="store_true", default=None, help="continue the crawl saved in --db")
    add("--quiet", action="store_true", default=None, help="print errors only")
    add(
        "--workers",
        type=int,
        metavar="N",
        help="processes for parsing pages; 0 parses in the event loop (default: one per CPU)",
    )
    add(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"total time allowed for one request (default: {defaults.timeout:g})",
    )
    add("--user-agent", metavar="TEXT", help=f"User-Agent header (default: {defaults.user_agent})")
    add(
        "--retries",
        type=int,
        metavar="N",
        help=f"attempts per request in all (default: {defaults.retries})",
    )
    add(
        "--max-bytes",
        type=int,
        metavar="N",
        help=f"largest body to download, in bytes (default: {defaults.max_bytes})",
    )
    add(
        "--max-redirects",
        type=int,
        metavar="N",
        help=f"redirect hops to follow (default: {defaults.max_redirects})",
    )
    add(
        "--no-robots",
        dest="respect_robots",
        action="store_false",
        default=None,
        help="ignore robots.txt",
    )
    add(
        "--frontier",
        metavar="URL",
        help="share the crawl through Redis (redis://HOST:PORT/DB) with other crawler processes; "
        "each one writes its own --db (default: this process alone, state in --db)",
    )
    add(
        "--name",
        metavar="NAME",
        help=f"the shared crawl's name in Redis, so several crawls share one server "
        f"(default: {defaults.name})",
    )
    add(
        "--lease-timeout",
        type=float,
        metavar="SECONDS",
        help="with --frontier: a worker silent this long is dead and its URLs go to the others "
        f"(default: {defaults.lease_timeout:g})",
    )
    add(
        "--redis-wait",
        type=float,
        metavar="SECONDS",
        help="with --frontier: how long to keep retrying when Redis goes away mid-crawl before "
        f"stopping (exit 4; default: {defaults.redis_wait:g})",
    )
    add(
        "--fixed-concurrency",
        dest="adaptive",
        action="store_false",
        default=None,
        help="keep --concurrency requests in flight; by default the crawler lowers it while the "
        "event loop lags or servers slow down",
    )
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the crawl command's arguments; an option not given is None.

    Raises ConfigError with argparse's message on a usage error; ``--help`` prints the help and
    raises SystemExit(0).
    """
    return _build_parser().parse_args(list(argv))


def _flag_name(name: str) -> str:
    return _FLAG_FOR.get(name, "--" + name.replace("_", "-"))


# --------------------------------------------------------------------------- config file


def _resolve(path: Path, cwd: Path | None) -> Path:
    return path if cwd is None or path.is_absolute() else cwd / path


def _read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path`` (a BOM is fine); ConfigError naming ``what`` and the path."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not valid UTF-8 (bad byte at offset {exc.start})"
        ) from None


def _read_toml(path: Path) -> dict[str, Any]:
    text = _read_text(path, "config file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _unknown_key(path: Path, key: str) -> ConfigError:
    if key in _COMMAND_LINE_ONLY:
        flag = _COMMAND_LINE_ONLY[key]
        return ConfigError(f"{path}: unknown key {key!r}: {flag} is a command-line option only")
    close = difflib.get_close_matches(key, sorted(CONFIG_KEYS), n=1)
    if close:
        return ConfigError(f"{path}: unknown key {key!r} (did you mean {close[0]!r}?)")
    known = ", ".join(sorted(CONFIG_KEYS))
    return ConfigError(f"{path}: unknown key {key!r} (known keys: {known})")


def _file_settings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked settings of a config file, and its tables for the plugins."""
    settings: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for key, value in _read_toml(path).items():
        label = key
        if key in CONFIG_KEYS:
            if key == "images" and isinstance(value, dict):
                tables[key] = value
                if "dir" not in value:
                    continue
                label, value = "images.dir", value["dir"]
        elif isinstance(value, dict):
            tables[key] = value
            continue
        else:
            raise _unknown_key(path, key)
        try:
            settings[key] = _convert(key, value)
        except _Invalid as exc:
            raise ConfigError(f"{path}: {label} {exc.reason}") from None
    return settings, tables


def _config_path(given: str | None, cwd: Path | None) -> Path | None:
    """--config PATH if given, else ./config.toml if it exists, else None."""
    if given is not None:
        return _resolve(Path(given), cwd)
    default_path = _resolve(Path(CONFIG_FILE_NAME), cwd)
    return default_path if default_path.exists() else None


def load_file_config(given: str | None, *, cwd: Path | None = None) -> Config:
    """The Config of a config file alone, for commands other than a crawl (``merge`` reads the
    plugins' settings from it): ``given`` (--config PATH), else ./config.toml if it exists,
    else the defaults. Raises ConfigError as :func:`load_config` does."""
    config_path = _config_path(given, cwd)
    if config_path is None:
        return Config()
    settings, tables = _file_settings(config_path)
    return Config(plugin_settings=_freeze(tables), config_path=config_path, **settings)


def load_config(argv: Sequence[str], *, cwd: Path | None = None) -> Config:
    """Build the Config for a crawl from its command-line arguments (without the program name).

    Precedence: command-line flags > config file > built-in defaults. The config file is
    --config PATH if given (missing/unreadable -> ConfigError naming it), else ./config.toml if
    it exists, else none. ``cwd`` stands in for the current directory when looking for
    ./config.toml and resolving a relative --config (tests pass a temporary directory).
    Raises ConfigError naming the option or file key and the value on any bad setting.
    """
    args = parse_args(argv)
    config_path = _config_path(args.config, cwd)
    settings: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    if config_path is not None:
        settings, tables = _file_settings(config_path)

    for name in _RULES:
        value = getattr(args, name)
        if value is None:
            continue
        try:
            settings[name] = _convert(name, value)
        except _Invalid as exc:
            raise ConfigError(f"{_flag_name(name)} {exc.reason}") from None

    return Config(
        seed_file=Path(args.seed_file),
        resume=bool(args.resume),
        quiet=bool(args.quiet),
        plugin_settings=_freeze(tables),
        config_path=config_path,
        **settings,
    )


# --------------------------------------------------------------------------- seed file


def _seed_problem(line: str) -> str:
    """Why normalize_url refused a seed line, in words."""
    try:
        url = yarl.URL(line)
    except (ValueError, TypeError):
        return "unparseable URL"
    if not url.scheme:
        return "no scheme (write http:// or https://)"
    if url.scheme.lower() not in ("http", "https"):
        return "not an http or https URL"
    if not url.host:
        return "no host"
    return "invalid URL"


def read_seeds(path: Path, *, warn: Callable[[str], None]) -> list[str]:
    """The normalized, deduplicated URLs of a seed file, in file order.

    One URL per line; blank lines and lines starting with "#" (after stripping) are ignored.
    Each bad line is reported through ``warn`` as ``f"{path}:{lineno}: {reason}: {line!r}"``
    and skipped. A missing, unreadable or undecodable file raises ConfigError naming it; a file
    without a single valid URL raises SeedError.
    """
    text = _read_text(path, "seed file")

    seeds: dict[str, None] = {}
    bad_lines = 0
    for lineno, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        url = normalize_url(line)
        if url is None:
            bad_lines += 1
            warn(f"{path}:{lineno}: {_seed_problem(line)}: {line!r}")
            continue
        seeds.setdefault(url)
    if not seeds:
        detail = f" ({bad_lines} bad line{'s' if bad_lines != 1 else ''})" if bad_lines else ""
        raise SeedError(f"seed file {path} has no valid URL{detail}")
    return list(seeds)
