"""Fuzzing the load path: any descriptor bytes and any config text give a located
``DescriptorError``/``ConfigError`` or a result, never another exception (issue 8: an unhashable
``"type": ["jwt"]`` once raised TypeError and stopped the watcher)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connect_devloop.config import parse_config
from connect_devloop.descriptor import parse, render_bytes
from connect_devloop.errors import ConfigError, DescriptorError

ROOT = Path(__file__).resolve().parents[1]
DEMO_DESCRIPTOR = json.loads((ROOT / "connect_devloop/demo/atlassian-connect.json").read_text())
EXAMPLE_CONFIG = (ROOT / "config.example.toml").read_text()
CONFIG_PATH = Path("/nonexistent-fuzz-project/connect-dev.toml")
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# Every character, lone surrogates and NUL included.
any_text = st.text(st.characters(exclude_categories=()), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities too
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE_FRAGMENTS = [
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\x00",
    b"\xff",
    b"[" * 3000,
    b"{" * 200,
    b'{"a":' * 150,
    b"9" * 5000,
    b"-" + b"1" * 4301,
    b"1e999",
    b"NaN",
    b"-Infinity",
    b'"\\ud800"',
    b'"\\u0000"',
    b'{"key": "a", "key": "b"}',
    b'{"": 1}',
    b'{"authentication": {"type": ["jwt"]}}',
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b'"',
    b"\n",
]


def assert_located(error: DescriptorError) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem.path.startswith("$"), problem
    str(error)  # the message itself must be printable
    for problem in error.problems:
        problem.format(error.file).encode("utf-8")


def parse_or_located_error(raw: bytes) -> None:
    try:
        revision = parse(raw, path="fuzz.json")
    except DescriptorError as error:
        assert_located(error)
        return
    rendered = render_bytes(revision.document, "https://fuzz.example.com")
    document = json.loads(rendered)
    assert document["baseUrl"] == "https://fuzz.example.com"
    assert len(revision.digest) == 12


# --- (a) any JSON value, any bytes --------------------------------------------------------------


@FUZZ
@given(json_values, st.booleans())
def test_any_json_value(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    parse_or_located_error(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.lists(st.sampled_from(HOSTILE_FRAGMENTS) | st.binary(max_size=8), max_size=8))
def test_hostile_bytes(fragments: list[bytes]) -> None:
    parse_or_located_error(b"".join(fragments))


# --- (b) a valid descriptor with one node replaced ----------------------------------------------


def node_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            paths.extend(node_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths.extend(node_paths(item, (*path, index)))
    return paths


DEMO_PATHS = node_paths(DEMO_DESCRIPTOR)


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy: Any = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return copy


def test_the_seed_is_valid() -> None:
    parse(json.dumps(DEMO_DESCRIPTOR).encode())


@FUZZ
@given(st.sampled_from(DEMO_PATHS), json_values | st.just(...), st.booleans())
def test_one_node_of_a_valid_descriptor_replaced(
    path: tuple[Any, ...], value: Any, ascii_only: bool
) -> None:
    if value is ... and not path:
        value = None
    document = replaced(DEMO_DESCRIPTOR, path, value)
    text = json.dumps(document, ensure_ascii=ascii_only, indent=2)
    parse_or_located_error(text.encode("utf-8", "surrogatepass"))


# --- (c) configs --------------------------------------------------------------------------------

KEYS = {
    "": ["descriptor"],
    "addon": ["url"],
    "proxy": ["port"],
    "tunnel": ["provider", "public_url", "health_interval", "health_timeout"],
    "tunnel.ngrok": ["authtoken_env", "domain", "region", "path", "config_path", "download"],
    "tunnel.ssh": [
        *("target", "port", "identity_file", "remote_port", "remote_bind", "url_pattern"),
        *("options", "path"),
    ],
    "hosts": ["name", "url", "product", "username", "password_env", "password", "keys_url"],
}
PLAUSIBLE_STRINGS = [
    "",
    "http://[::1",
    "http://localhost:99999",
    "http://local host",
    "https://x.atlassian.net",
    "http://localhost:2990/jira",
    "~nosuchuser-fuzz/x",
    "{port:>999999999}",
    "{host}",
    "{}",
    "a\x00b",
    "(" * 2000,
    "a{99999999999}",
    "ngrok",
    "none",
    "ssh",
    "confluence",
    "JIRA_TOKEN",
    "-oProxyCommand=x",
    "x" * 5000,
]


def toml_string(text: str) -> str:
    # JSON's escapes are TOML's, except that TOML wants astral characters whole.
    return json.dumps(text, ensure_ascii=False)


def toml_float(number: float) -> str:
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return repr(number)


toml_scalars = (
    st.booleans().map(lambda b: "true" if b else "false")
    | st.integers().map(str)
    | st.sampled_from(["1" + "0" * 30, "0x" + "f" * 5000, "9" * 5000, "-1", "0", "65536", "1_000"])
    | st.floats().map(toml_float)
    | st.sampled_from(["nan", "-inf", "1e999", "-0.0", "1e300"])
    | any_text.map(toml_string)
    | st.sampled_from(PLAUSIBLE_STRINGS).map(toml_string)
    | st.datetimes().map(lambda moment: moment.isoformat())
    | st.dates().map(lambda day: day.isoformat())
)
toml_values = st.recursive(
    toml_scalars,
    lambda children: (
        st.lists(children, max_size=3).map(lambda items: f"[{', '.join(items)}]")
        | st.dictionaries(st.sampled_from(["a", "url", "port", "x y"]), children, max_size=3).map(
            lambda table: "{" + ", ".join(f"{json.dumps(k)} = {v}" for k, v in table.items()) + "}"
        )
    ),
    max_leaves=6,
)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for table, keys in KEYS.items():
        chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
        if not chosen and table:
            continue
        if table == "hosts":
            lines.append("[[hosts]]")
        elif table:
            lines.append(f"[{table}]")
        lines.extend(f"{key} = {draw(toml_values)}" for key in chosen)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


def parse_config_or_located_error(text: str) -> None:
    try:
        parse_config(text, CONFIG_PATH)
    except ConfigError as error:
        assert_config_located(error)


def assert_config_located(error: ConfigError) -> None:
    assert error.file == str(CONFIG_PATH)
    assert error.line is not None or error.key, error
    str(error).encode("utf-8", "surrogatepass")


@FUZZ
@given(toml_documents())
def test_generated_configs(text: str) -> None:
    parse_config_or_located_error(text)


EXAMPLE_LINES = EXAMPLE_CONFIG.split("\n")
ASSIGNMENTS = [i for i, line in enumerate(EXAMPLE_LINES) if re.match(r"#? ?\w+ = ", line)]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(ASSIGNMENTS), toml_values), min_size=1, max_size=3))
def test_example_config_with_values_replaced(changes: list[tuple[int, str]]) -> None:
    lines = list(EXAMPLE_LINES)
    for index, value in changes:
        key = lines[index].lstrip("# ").split(" = ")[0]
        lines[index] = f"{key} = {value}"
    parse_config_or_located_error("\n".join(lines))


@FUZZ
@given(st.integers(0, len(EXAMPLE_CONFIG)), any_text | st.sampled_from(["[", "{", '"', "\x00"]))
def test_example_config_with_text_inserted(position: int, inserted: str) -> None:
    parse_config_or_located_error(EXAMPLE_CONFIG[:position] + inserted + EXAMPLE_CONFIG[position:])


@FUZZ
@given(any_text)
def test_any_config_text(text: str) -> None:
    parse_config_or_located_error(text)


def test_example_config_is_valid() -> None:
    parse_config(EXAMPLE_CONFIG, CONFIG_PATH)
