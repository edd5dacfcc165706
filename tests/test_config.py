"""Config: defaults, config.toml, flags, precedence, error messages, and the seed file."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from crawler.config import (
    CONFIG_KEYS,
    DEFAULT_USER_AGENT,
    Config,
    load_config,
    parse_args,
    read_seeds,
)
from crawler.errors import ConfigError, SeedError

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def write_config(directory: Path, text: str, name: str = "config.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, *flags: str) -> Config:
    return load_config(["seeds.txt", *flags], cwd=tmp_path)


def config_error(tmp_path: Path, *flags: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, *flags)
    return str(info.value)


# --------------------------------------------------------------------------- defaults


def test_builtin_defaults() -> None:
    config = Config()
    assert config.seed_file is None
    assert config.db == Path("crawl.db")
    assert config.max_pages is None
    assert config.max_depth is None
    assert config.concurrency == 32
    assert config.per_host == 8
    assert config.delay == 0.0
    assert config.scope == "host"
    assert config.plugins == ()
    assert config.images is None
    assert config.resume is False
    assert config.quiet is False
    assert config.timeout == 30.0
    assert config.user_agent == DEFAULT_USER_AGENT
    assert config.retries == 3
    assert config.max_bytes == 10 * 1024 * 1024
    assert config.max_redirects == 10
    assert config.respect_robots is True
    assert config.workers is None
    assert dict(config.plugin_settings) == {}
    assert config.config_path is None


def test_no_flags_no_file_gives_defaults(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config == Config(seed_file=Path("seeds.txt"))
    assert config.config_path is None


def test_config_is_frozen_and_plugin_settings_read_only(tmp_path: Path) -> None:
    write_config(tmp_path, '[audit]\nlevel = "x"\nrules = ["a"]\n[audit.deep]\nk = 1\n')
    config = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.concurrency = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.plugin_settings["other"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        config.plugin_settings["audit"]["level"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        config.plugin_settings["audit"]["deep"]["k"] = 2
    assert config.plugin_settings["audit"]["rules"] == ("a",)


def test_config_is_hashable_despite_its_mapping() -> None:
    assert hash(Config(max_pages=3)) == hash(Config(max_pages=3))


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        (DEFAULT_USER_AGENT, "crawler"),
        ("MyBot/2.0", "mybot"),
        ("MyBot", "mybot"),
        ("Mozilla/5.0 (compatible; Other/1.0)", "mozilla"),
    ],
)
def test_robots_token(user_agent: str, token: str) -> None:
    assert Config(user_agent=user_agent).robots_token == token


def test_repr_shows_only_non_default_fields() -> None:
    assert repr(Config()) == "Config()"
    text = repr(
        Config(
            seed_file=Path("s.txt"),
            max_pages=5,
            plugins=("audit",),
            plugin_settings={"audit": {"x": 1}},
        )
    )
    assert text == (
        "Config(seed_file='s.txt', max_pages=5, plugins=('audit',), "
        "plugin_settings={'audit': {'x': 1}})"
    )


def test_direct_construction_is_validated_and_normalized() -> None:
    with pytest.raises(ConfigError, match=r"^concurrency must be >= 1, got 0$"):
        Config(concurrency=0)
    config = Config(delay=2, db="x.db", plugins=["a", "b"])  # type: ignore[arg-type]
    assert config.delay == 2.0 and isinstance(config.delay, float)
    assert config.db == Path("x.db")
    assert config.plugins == ("a", "b")


# --------------------------------------------------------------------------- the config file

ALL_KEYS_TOML = """\
db = "other.db"
max_pages = 50
max_depth = 2
concurrency = 4
per_host = 2
delay = 0.5
scope = "domain"
plugins = ["audit", "images"]
images = "pics"
timeout = 12.5
user_agent = "TestBot/1.0"
retries = 5
max_bytes = 1000
max_redirects = 3
respect_robots = false
workers = 0
frontier = "redis://127.0.0.1:6390/2"
name = "shop-2024"
lease_timeout = 5.5
redis_wait = 7
adaptive = false
"""

ALL_KEYS_EXPECTED: dict[str, Any] = {
    "db": Path("other.db"),
    "max_pages": 50,
    "max_depth": 2,
    "concurrency": 4,
    "per_host": 2,
    "delay": 0.5,
    "scope": "domain",
    "plugins": ("audit", "images"),
    "images": Path("pics"),
    "timeout": 12.5,
    "user_agent": "TestBot/1.0",
    "retries": 5,
    "max_bytes": 1000,
    "max_redirects": 3,
    "respect_robots": False,
    "workers": 0,
    "frontier": "redis://127.0.0.1:6390/2",
    "name": "shop-2024",
    "lease_timeout": 5.5,
    "redis_wait": 7.0,
    "adaptive": False,
}


def test_every_key_is_covered_by_the_file_test() -> None:
    assert set(ALL_KEYS_EXPECTED) == CONFIG_KEYS
    assert set(tomllib.loads(ALL_KEYS_TOML)) == CONFIG_KEYS


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, ALL_KEYS_TOML)
    config = load(tmp_path)
    for key, expected in ALL_KEYS_EXPECTED.items():
        assert getattr(config, key) == expected, key
        assert expected != getattr(Config(), key), key
    assert config.config_path == path


def test_flags_override_file(tmp_path: Path) -> None:
    write_config(tmp_path, ALL_KEYS_TOML)
    config = load(
        tmp_path,
        *["--db", "flag.db", "--max-pages", "7", "--max-depth", "1", "--concurrency", "9"],
        *["--per-host", "3", "--delay", "1.5", "--scope", "any", "--plugin", "x"],
        *["--images", "flagpics", "--timeout", "3", "--user-agent", "FlagBot/9"],
        *["--retries", "1", "--max-bytes", "77", "--max-redirects", "0", "--workers", "6"],
        *["--frontier", "redis://h:1/0", "--name", "n", "--lease-timeout", "9"],
        *["--redis-wait", "0"],
    )
    assert config.db == Path("flag.db")
    assert config.max_pages == 7
    assert config.max_depth == 1
    assert config.concurrency == 9
    assert config.per_host == 3
    assert config.delay == 1.5
    assert config.scope == "any"
    assert config.plugins == ("x",)
    assert config.images == Path("flagpics")
    assert config.timeout == 3.0
    assert config.user_agent == "FlagBot/9"
    assert config.retries == 1
    assert config.max_bytes == 77
    assert config.max_redirects == 0
    assert config.workers == 6
    assert config.frontier == "redis://h:1/0"
    assert config.name == "n"
    assert config.lease_timeout == 9.0
    assert config.redis_wait == 0.0
    # Not overridden by a flag: still the file's value.
    assert config.respect_robots is False


def test_file_value_kept_when_flag_absent(tmp_path: Path) -> None:
    write_config(tmp_path, "concurrency = 4\nper_host = 2\n")
    config = load(tmp_path, "--concurrency", "9")
    assert config.concurrency == 9
    assert config.per_host == 2


def test_command_line_only_flags(tmp_path: Path) -> None:
    config = load(tmp_path, "--resume", "--quiet", "--no-robots")
    assert config.resume is True
    assert config.quiet is True
    assert config.respect_robots is False
    assert config.seed_file == Path("seeds.txt")


def test_fixed_concurrency_flag(tmp_path: Path) -> None:
    assert load(tmp_path).adaptive is True
    assert load(tmp_path, "--fixed-concurrency").adaptive is False
    write_config(tmp_path, "adaptive = true\n")
    assert load(tmp_path, "--fixed-concurrency").adaptive is False


def test_no_robots_overrides_file_true(tmp_path: Path) -> None:
    write_config(tmp_path, "respect_robots = true\n")
    assert load(tmp_path, "--no-robots").respect_robots is False


def test_config_toml_in_cwd_is_read(tmp_path: Path) -> None:
    path = write_config(tmp_path, "concurrency = 5\n")
    config = load(tmp_path)
    assert config.concurrency == 5
    assert config.config_path == path


def test_config_toml_elsewhere_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_config(tmp_path, "concurrency = 5\n")
    config = load_config(["seeds.txt"], cwd=tmp_path / "sub")
    assert config.concurrency == 32
    assert config.config_path is None


def test_config_flag_reads_that_file_instead_of_cwd_one(tmp_path: Path) -> None:
    write_config(tmp_path, "concurrency = 5\n")
    other = tmp_path / "etc"
    other.mkdir()
    chosen = write_config(other, "concurrency = 6\n", name="crawl.toml")
    config = load(tmp_path, "--config", str(chosen))
    assert config.concurrency == 6
    assert config.config_path == chosen


def test_relative_config_flag_is_relative_to_cwd(tmp_path: Path) -> None:
    write_config(tmp_path, "per_host = 1\n", name="mine.toml")
    config = load(tmp_path, "--config", "mine.toml")
    assert config.per_host == 1
    assert config.config_path == tmp_path / "mine.toml"


def test_paths_in_file_stay_relative_to_current_directory(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    chosen = write_config(etc, 'db = "data/c.db"\nimages = "pics"\n')
    config = load(tmp_path, "--config", str(chosen))
    assert config.db == Path("data/c.db")
    assert config.images == Path("pics")


def test_missing_config_flag_file_is_an_error(tmp_path: Path) -> None:
    message = config_error(tmp_path, "--config", "nope.toml")
    assert message == f"config file not found: {tmp_path / 'nope.toml'}"


def test_unreadable_config_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    message = config_error(tmp_path, "--config", "adir")
    assert message.startswith(f"cannot read config file {tmp_path / 'adir'}: ")


def test_config_toml_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").mkdir()
    assert str(tmp_path / "config.toml") in config_error(tmp_path)


def test_malformed_toml_names_file_and_position(tmp_path: Path) -> None:
    path = write_config(tmp_path, "concurrency = 4\nmax_pages = \n")
    message = config_error(tmp_path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 2" in message


def test_non_utf8_config_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'user_agent = "caf\xe9"\n')
    message = config_error(tmp_path)
    assert message.startswith(f"config file {path} is not valid UTF-8")


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"\xef\xbb\xbfconcurrency = 3\n")
    assert load(tmp_path).concurrency == 3


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    path = write_config(tmp_path, "max_page = 5\n")
    assert config_error(tmp_path) == f"{path}: unknown key 'max_page' (did you mean 'max_pages'?)"


def test_unknown_key_with_dashes_suggests_underscores(tmp_path: Path) -> None:
    write_config(tmp_path, "per-host = 5\n")
    assert "unknown key 'per-host' (did you mean 'per_host'?)" in config_error(tmp_path)


def test_unknown_key_without_close_match_lists_known_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, "zzz = 5\n")
    message = config_error(tmp_path)
    assert message.startswith(f"{path}: unknown key 'zzz' (known keys: ")
    for key in CONFIG_KEYS:
        assert key in message


@pytest.mark.parametrize(("key", "flag"), [("resume", "--resume"), ("quiet", "--quiet")])
def test_command_line_only_key_in_file_is_unknown(tmp_path: Path, key: str, flag: str) -> None:
    path = write_config(tmp_path, f"{key} = true\n")
    assert config_error(tmp_path) == (
        f"{path}: unknown key '{key}': {flag} is a command-line option only"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('concurrency = "ten"', "concurrency must be an integer, got 'ten'"),
        ("concurrency = true", "concurrency must be an integer, got true"),
        ("max_pages = 2.5", "max_pages must be an integer, got 2.5"),
        ('delay = "1"', "delay must be a number, got '1'"),
        ("timeout = false", "timeout must be a number, got false"),
        ("delay = nan", "delay must be a finite number, got nan"),
        ('respect_robots = "yes"', "respect_robots must be true or false, got 'yes'"),
        ("respect_robots = 1", "respect_robots must be true or false, got 1"),
        ("user_agent = 5", "user_agent must be a string, got 5"),
        ("db = 5", "db must be a path (a string), got 5"),
        ('db = ""', "db must not be empty, got ''"),
        ('scope = "site"', "scope must be one of 'host', 'domain', 'any', got 'site'"),
        (
            'plugins = "audit"',
            "plugins must be a list of plugin names (strings), got 'audit'",
        ),
        ("plugins = [1]", "plugins must be a list of plugin names (strings), got [1]"),
        ('plugins = ["a", "a"]', "plugins lists 'a' twice, got ['a', 'a']"),
        ('plugins = [""]', "plugins must not contain an empty plugin name, got ['']"),
        ("concurrency = [1]", "concurrency must be an integer, got [1]"),
        ("[concurrency]\nx = 1", "concurrency must be an integer, got {'x': 1}"),
        ("[images]\ndir = 3", "images.dir must be a path (a string), got 3"),
        (
            'frontier = "http://h:1/0"',
            "frontier must be a redis://HOST:PORT/DB URL, got 'http://h:1/0'",
        ),
        (
            'frontier = "redis://h:x/0"',
            "frontier must be a redis://HOST:PORT/DB URL, got 'redis://h:x/0'",
        ),
        (
            'frontier = "redis://h:1/db"',
            "frontier must name a database number after the port (redis://HOST:PORT/0), "
            "got 'redis://h:1/db'",
        ),
        ("frontier = 6379", "frontier must be a redis://HOST:PORT/DB URL, got 6379"),
        (
            'name = "a b"',
            "name must be 1-64 letters, digits, '.', '_' or '-' (a Redis key part), got 'a b'",
        ),
    ],
)
def test_wrong_type_in_file(tmp_path: Path, line: str, message: str) -> None:
    path = write_config(tmp_path, line + "\n")
    assert config_error(tmp_path) == f"{path}: {message}"


def test_int_accepted_for_float_keys(tmp_path: Path) -> None:
    write_config(tmp_path, "delay = 2\ntimeout = 10\n")
    config = load(tmp_path)
    assert config.delay == 2.0 and isinstance(config.delay, float)
    assert config.timeout == 10.0 and isinstance(config.timeout, float)


# Each range rule: (config key, flag, bad value as typed, bad value as shown, bound).
RANGE_CASES = [
    ("max_pages", "--max-pages", "0", "0", ">= 1"),
    ("max_depth", "--max-depth", "-1", "-1", ">= 0"),
    ("concurrency", "--concurrency", "0", "0", ">= 1"),
    ("per_host", "--per-host", "0", "0", ">= 1"),
    ("delay", "--delay", "-0.5", "-0.5", ">= 0"),
    ("timeout", "--timeout", "0", "0.0", "> 0"),
    ("retries", "--retries", "0", "0", ">= 1"),
    ("max_bytes", "--max-bytes", "0", "0", ">= 1"),
    ("max_redirects", "--max-redirects", "-1", "-1", ">= 0"),
    ("workers", "--workers", "-1", "-1", ">= 0"),
    ("lease_timeout", "--lease-timeout", "0", "0.0", "> 0"),
    ("redis_wait", "--redis-wait", "-0.5", "-0.5", ">= 0"),
]


@pytest.mark.parametrize(("key", "flag", "typed", "shown", "bound"), RANGE_CASES)
def test_range_error_from_flag(
    tmp_path: Path, key: str, flag: str, typed: str, shown: str, bound: str
) -> None:
    assert config_error(tmp_path, f"{flag}={typed}") == f"{flag} must be {bound}, got {shown}"


@pytest.mark.parametrize(("key", "flag", "typed", "shown", "bound"), RANGE_CASES)
def test_range_error_from_file(
    tmp_path: Path, key: str, flag: str, typed: str, shown: str, bound: str
) -> None:
    toml_value = "0.0" if key in ("timeout", "lease_timeout") else typed
    path = write_config(tmp_path, f"{key} = {toml_value}\n")
    assert config_error(tmp_path) == f"{path}: {key} must be {bound}, got {shown}"


@pytest.mark.parametrize(("key", "flag", "typed", "shown", "bound"), RANGE_CASES)
def test_range_boundary_is_accepted(
    tmp_path: Path, key: str, flag: str, typed: str, shown: str, bound: str
) -> None:
    if bound == "> 0":
        return  # no smallest valid value; covered by the flag override test
    edge = bound.split()[1]
    assert getattr(load(tmp_path, f"{flag}={edge}"), key) == float(edge)


def test_messages_in_the_real_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(["seeds.txt", "--max-pages", "0"])
    assert str(info.value) == "--max-pages must be >= 1, got 0"
    write_config(tmp_path, "max_pages = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(["seeds.txt"])
    assert str(info.value) == "config.toml: max_pages must be >= 1, got 0"
    write_config(tmp_path, "max_pages = 4\n")
    assert load_config(["seeds.txt"]).config_path == Path("config.toml")


def test_bad_file_value_is_reported_even_if_a_flag_overrides_it(tmp_path: Path) -> None:
    write_config(tmp_path, "concurrency = 0\n")
    assert "concurrency must be >= 1, got 0" in config_error(tmp_path, "--concurrency", "4")


def test_scope_flag_is_validated_with_the_same_rule(tmp_path: Path) -> None:
    assert config_error(tmp_path, "--scope", "site") == (
        "--scope must be one of 'host', 'domain', 'any', got 'site'"
    )


def test_nan_delay_flag_is_rejected(tmp_path: Path) -> None:
    assert config_error(tmp_path, "--delay", "nan") == "--delay must be a finite number, got nan"


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        ("", "must not be empty, got ''"),
        ("   ", "must not be empty, got '   '"),
        ("Bot/1\r\nX-Evil: 1", "must not contain control characters, got 'Bot/1\\r\\nX-Evil: 1'"),
        ("/1.0", "must start with a product token such as 'mybot/1.0', got '/1.0'"),
    ],
)
def test_bad_user_agent(tmp_path: Path, user_agent: str, reason: str) -> None:
    assert config_error(tmp_path, f"--user-agent={user_agent}") == f"--user-agent {reason}"


def test_empty_db_flag_is_rejected(tmp_path: Path) -> None:
    assert config_error(tmp_path, "--db=") == "--db must not be empty, got ''"


# --------------------------------------------------------------------------- plugins


def test_repeated_plugin_flag_keeps_order(tmp_path: Path) -> None:
    config = load(tmp_path, "--plugin", "audit", "--plugin", "images")
    assert config.plugins == ("audit", "images")


def test_plugin_flag_replaces_file_list(tmp_path: Path) -> None:
    write_config(tmp_path, 'plugins = ["images", "audit"]\n')
    assert load(tmp_path).plugins == ("images", "audit")
    assert load(tmp_path, "--plugin", "audit").plugins == ("audit",)


def test_duplicate_plugin_flag_is_rejected(tmp_path: Path) -> None:
    message = config_error(tmp_path, "--plugin", "audit", "--plugin", "audit")
    assert message == "--plugin lists 'audit' twice, got ['audit', 'audit']"


def test_tables_go_to_plugin_settings(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        'concurrency = 2\n[audit]\nslow = 1.5\nanything = "goes"\n[custom]\nx = [1, 2]\n',
    )
    config = load(tmp_path)
    assert set(config.plugin_settings) == {"audit", "custom"}
    assert dict(config.plugin_settings["audit"]) == {"slow": 1.5, "anything": "goes"}
    assert config.plugin_settings["custom"]["x"] == (1, 2)
    assert config.concurrency == 2


def test_images_table_dir_sets_images_and_reaches_plugin(tmp_path: Path) -> None:
    write_config(tmp_path, '[images]\ndir = "pics"\nmax = 3\n')
    config = load(tmp_path)
    assert config.images == Path("pics")
    assert dict(config.plugin_settings["images"]) == {"dir": "pics", "max": 3}
    assert load(tmp_path, "--images", "other").images == Path("other")


def test_images_table_without_dir_leaves_images_unset(tmp_path: Path) -> None:
    write_config(tmp_path, "[images]\nmax = 3\n")
    config = load(tmp_path)
    assert config.images is None
    assert dict(config.plugin_settings["images"]) == {"max": 3}


# --------------------------------------------------------------------------- argparse


def test_parse_args_leaves_absent_options_none() -> None:
    namespace = parse_args(["seeds.txt"])
    assert namespace.seed_file == "seeds.txt"
    for name in CONFIG_KEYS | {"config", "resume", "quiet"}:
        assert getattr(namespace, name) is None, name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["s.txt", "--max-pages", "abc"], "argument --max-pages: invalid int value: 'abc'"),
        (["s.txt", "--delay", "soon"], "argument --delay: invalid float value: 'soon'"),
        (["s.txt", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required: SEED_FILE"),
        (["s.txt", "--max-page", "3"], "unrecognized arguments: --max-page 3"),
        (["s.txt", "--concurrency"], "argument --concurrency: expected one argument"),
    ],
)
def test_usage_errors_raise_config_error_not_exit(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(argv)
    assert str(info.value) == message


def test_help_prints_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load_config(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "SEED_FILE" in out
    for flag in ["--max-pages", "--plugin", "--no-robots", "--user-agent", "--workers"]:
        assert flag in out


# --------------------------------------------------------------------------- the repo's file


def test_repo_config_toml_changes_nothing(tmp_path: Path) -> None:
    config = load_config(["seeds.txt", "--config", str(REPO_CONFIG)], cwd=tmp_path)
    assert config == Config(seed_file=Path("seeds.txt"), config_path=REPO_CONFIG)


def uncommented_repo_config() -> str:
    setting = re.compile(r"^# (\[[\w.-]+\]|[A-Za-z_][\w-]* = )")
    lines = REPO_CONFIG.read_text(encoding="utf-8").splitlines()
    return "\n".join(line[2:] if setting.match(line) else line for line in lines) + "\n"


def test_repo_config_toml_documents_every_key_with_its_default(tmp_path: Path) -> None:
    text = uncommented_repo_config()
    data = tomllib.loads(text)
    documented = {key for key, value in data.items() if not isinstance(value, dict)}
    assert documented | {"images"} == CONFIG_KEYS
    assert "dir" in data["images"]
    assert "audit" in data

    path = write_config(tmp_path, text)
    config = load(tmp_path)  # parses and validates every documented value
    defaults = Config()
    for key in CONFIG_KEYS:
        default = getattr(defaults, key)
        # A key whose default is "none"/"no limit" shows an example; every other shows its default.
        assert default is None or getattr(config, key) == default, key
        assert getattr(config, key) is not None, key
    assert set(config.plugin_settings) == {"images", "audit"}
    assert config.config_path == path


# --------------------------------------------------------------------------- the seed file


def read(path: Path) -> tuple[list[str], list[str]]:
    warnings: list[str] = []
    return read_seeds(path, warn=warnings.append), warnings


def test_seeds_skip_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "seeds.txt"
    path.write_text(
        "# my seeds\n\nhttp://example.com/\n   \n   # indented comment\n  https://b.test/x  \n",
        encoding="utf-8",
    )
    seeds, warnings = read(path)
    assert seeds == ["http://example.com/", "https://b.test/x"]
    assert warnings == []


def test_seeds_are_normalized_and_deduped_in_order(tmp_path: Path) -> None:
    path = tmp_path / "seeds.txt"
    path.write_text(
        "HTTP://B.test:80/a#frag\nhttp://a.test/\nhttp://b.test/a\nhttp://a.test/\n",
        encoding="utf-8",
    )
    seeds, warnings = read(path)
    assert seeds == ["http://b.test/a", "http://a.test/"]
    assert warnings == []


def test_bad_seed_lines_are_warned_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "seeds.txt"
    path.write_text(
        "http://ok.test/\n"
        "# comment\n"
        "ftp://files.test/x\n"
        "\n"
        "example.com/page\n"
        "http://\n"
        "http://[::1\n"
        "https://ok.test/2\r\n"
        "mailto:someone@example.com\n",
        encoding="utf-8",
    )
    seeds, warnings = read(path)
    assert seeds == ["http://ok.test/", "https://ok.test/2"]
    assert warnings == [
        f"{path}:3: not an http or https URL: 'ftp://files.test/x'",
        f"{path}:5: no scheme (write http:// or https://): 'example.com/page'",
        f"{path}:6: no host: 'http://'",
        f"{path}:7: unparseable URL: 'http://[::1'",
        f"{path}:9: not an http or https URL: 'mailto:someone@example.com'",
    ]


def test_no_valid_seed_is_a_seed_error(tmp_path: Path) -> None:
    path = tmp_path / "seeds.txt"
    path.write_text("# only a comment\nftp://x.test/\n", encoding="utf-8")
    warnings: list[str] = []
    with pytest.raises(SeedError) as info:
        read_seeds(path, warn=warnings.append)
    assert str(info.value) == f"seed file {path} has no valid URL (1 bad line)"
    assert len(warnings) == 1


def test_empty_seed_file_is_a_seed_error(tmp_path: Path) -> None:
    path = tmp_path / "seeds.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SeedError, match="no valid URL") as info:
        read(path)
    assert str(path) in str(info.value)


def test_missing_seed_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(ConfigError) as info:
        read(path)
    assert not isinstance(info.value, SeedError)
    assert str(info.value) == f"seed file not found: {path}"


def test_unreadable_seed_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read(tmp_path)
    assert str(info.value).startswith(f"cannot read seed file {tmp_path}: ")


def test_undecodable_seed_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "seeds.txt"
    path.write_bytes(b"http://a.test/\xff\n")
    with pytest.raises(ConfigError) as info:
        read(path)
    assert not isinstance(info.value, SeedError)
    assert str(info.value).startswith(f"seed file {path} is not valid UTF-8")
