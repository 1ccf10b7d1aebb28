"""config.py ``[inspector]``: capture, keep and max_body, their defaults and their mistakes
(each names the file, the line and the key, with a hint)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connect_devloop.config import (
    CONFIG_FILE_NAME,
    MAX_INSPECTED_BODY,
    MAX_KEPT_REQUESTS,
    InspectorConfig,
    parse_config,
)
from connect_devloop.errors import ConfigError

KEEP_RANGE = f"1-{MAX_KEPT_REQUESTS:,}"
BODY_RANGE = f"0-{MAX_INSPECTED_BODY:,}"
KEEP_HINT = "To capture nothing, set capture = false."
BODY_HINT = "e.g. max_body = 65536 (64 KB of each body; the rest is counted, not kept)"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / CONFIG_FILE_NAME


def config_error(text: str, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), path)
    return info.value


def test_defaults(config_path: Path) -> None:
    for text in ("", "[inspector]\n"):
        config = parse_config(text, config_path)
        assert config.inspector == InspectorConfig(capture=True, keep=500, max_body=64 * 1024)


def test_every_key(config_path: Path) -> None:
    text = "[inspector]\ncapture = false\nkeep = 20\nmax_body = 0\n"
    assert parse_config(text, config_path).inspector == InspectorConfig(
        capture=False, keep=20, max_body=0
    )


@pytest.mark.parametrize(
    ("keep", "max_body"),
    [(1, 0), (MAX_KEPT_REQUESTS, MAX_INSPECTED_BODY), ("1_000", "0x10000")],
)
def test_the_bounds_are_accepted(config_path: Path, keep: object, max_body: object) -> None:
    text = f"[inspector]\nkeep = {keep}\nmax_body = {max_body}\n"
    inspector = parse_config(text, config_path).inspector
    assert (inspector.keep, inspector.max_body) == (
        int(str(keep), 0),
        int(str(max_body), 0),
    )


@pytest.mark.parametrize(
    ("line", "key", "message", "hint"),
    [
        ("keep = 0", "keep", f"0 is not a number of requests to keep ({KEEP_RANGE})", KEEP_HINT),
        ("keep = -5", "keep", f"-5 is not a number of requests to keep ({KEEP_RANGE})", KEEP_HINT),
        (
            f"keep = {MAX_KEPT_REQUESTS + 1}",
            "keep",
            f"{MAX_KEPT_REQUESTS + 1} is not a number of requests to keep ({KEEP_RANGE})",
            KEEP_HINT,
        ),
        (
            "keep = 0x" + "f" * 60,
            "keep",
            f"a number that large is not a number of requests to keep ({KEEP_RANGE})",
            KEEP_HINT,
        ),
        (
            "max_body = -1",
            "max_body",
            f"-1 is not a body size in bytes ({BODY_RANGE})",
            BODY_HINT,
        ),
        (
            f"max_body = {MAX_INSPECTED_BODY + 1}",
            "max_body",
            f"{MAX_INSPECTED_BODY + 1} is not a body size in bytes ({BODY_RANGE})",
            BODY_HINT,
        ),
        ('keep = "500"', "keep", "must be an integer, not a string", "e.g. keep = 8000"),
        ("keep = 5.0", "keep", "must be an integer, not a float", "e.g. keep = 8000"),
        ("keep = true", "keep", "must be an integer, not a boolean", "e.g. keep = 8000"),
        ("max_body = [1]", "max_body", "must be an integer, not an array", "e.g. max_body = 8000"),
        ("capture = 1", "capture", "must be a boolean, not an integer", "e.g. capture = true"),
        ('capture = "no"', "capture", "must be a boolean, not a string", "e.g. capture = true"),
    ],
)
def test_bad_values_name_file_line_and_key(
    config_path: Path, line: str, key: str, message: str, hint: str
) -> None:
    error = config_error(
        f'descriptor = "a.json"\n\n[inspector]\n# what the proxy keeps\n{line}\n', config_path
    )
    assert (error.file, error.line, error.key) == (str(config_path), 5, f"inspector.{key}")
    assert error.message == message
    assert error.hint == hint
    assert str(error) == f"{config_path}:5: inspector.{key}: {message}"


@pytest.mark.parametrize(
    ("line", "key", "hint"),
    [
        ("kept = 5", "inspector.kept", "did you mean 'keep'?"),
        ("max-body = 5", "inspector.max-body", "did you mean 'max_body'?"),
        ("captures = false", "inspector.captures", "did you mean 'capture'?"),
        ("port = 4040", "inspector.port", "Known keys here: capture, keep, max_body."),
    ],
)
def test_an_unknown_key_gets_a_hint(config_path: Path, line: str, key: str, hint: str) -> None:
    error = config_error(f"[inspector]\nkeep = 5\n{line}\n", config_path)
    assert (error.line, error.key, error.message, error.hint) == (3, key, "unknown key", hint)


def test_inspector_must_be_a_table(config_path: Path) -> None:
    error = config_error("inspector = 5\n", config_path)
    assert (error.line, error.key) == (1, "inspector")
    assert error.message == "must be a table: write [inspector] on its own line"


def test_a_misspelt_table_header_is_named(config_path: Path) -> None:
    error = config_error("[inpsector]\nkeep = 5\n", config_path)
    assert (error.line, error.key, error.message) == (1, "inpsector", "unknown key")
    assert error.hint == "did you mean 'inspector'?"
