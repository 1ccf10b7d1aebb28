"""One CLI: `--version`, a description for every command, a help text with its default for every
option, argument names as the docs write them, one wording for how to stop, and
docs/commands.md equal to `--help`."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from connect_devloop import cli
from connect_devloop.render.text import STOP_DASHBOARD, STOP_TEXT

from .e2e import CONNECT_DEV

ROOT = Path(__file__).resolve().parent.parent


def load_commands_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("commands_doc", ROOT / "scripts/commands_doc.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


commands_doc = load_commands_doc()


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for words, parser in commands_doc.commands(cli._build_parser()):
        yield " ".join(("connect-dev", *words)), parser


def test_version_is_the_package_version() -> None:
    result = subprocess.run(
        [*CONNECT_DEV, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"connect-dev {project['version']}\n"
    assert metadata.version("connect-devloop") == project["version"] == cli.version()


@pytest.mark.parametrize(
    ("name", "parser"), [pytest.param(name, parser, id=name) for name, parser in parsers()]
)
def test_every_command_has_a_description_and_every_option_its_help_and_default(
    name: str, parser: argparse.ArgumentParser
) -> None:
    assert parser.description, f"{name}: no description"
    problems = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        what = "/".join(action.option_strings) or action.metavar or action.dest
        if isinstance(action, argparse._SubParsersAction):
            # The list of commands: each has a one-line help.
            problems += [
                f"{what} {choice.dest}: no help"
                for choice in action._choices_actions
                if not choice.help
            ]
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            problems.append(f"{what}: no help")
            continue
        # A value it takes when not given (a store_true's False needs no saying), or an optional
        # argument: the help says what happens without it.
        has_default = action.default not in (None, False, argparse.SUPPRESS) or (
            not action.option_strings and action.nargs == "?"
        )
        if has_default and "default" not in action.help:
            problems.append(f"{what}: the help does not say its default ({action.default!r})")
    assert problems == [], name


# The argument names of DESIGN.md's command contract and of the docs, as `--help` shows them.
NAMES = {
    "up": ["[--config PATH]", "[--no-tui]", "[--log-format {text,json}]", "[-v]"],
    "down": ["[--config PATH]"],
    "validate": ["[--config PATH]", "[DESCRIPTOR]"],
    "host": ["[--port N]", "[--context PATH]", "[--user NAME:PASSWORD]", "[--ping-after MS]"],
    "demo": ["[--dir DIR]", "[--no-tui]", "[--log-format {text,json}]", "[--forge]"],
    "init": [
        "[--example]",
        "[--force]",
        "[--addon-url URL]",
        "[--addon-command COMMAND]",
        "[--host-url URL]",
        "[--host-user NAME]",
        "[--product {jira,confluence}]",
        "[--tunnel {auto,ngrok,ssh,none}]",
        "[--descriptor PATH]",
    ],
    "forge convert": ["[-o PATH]", "[--json]", "[DESCRIPTOR]"],
    "login": ["[--ngrok]", "[--forge]", "[HOST]"],
    "token": ["[--tenant KEY]", "[--ttl SECONDS]", "METHOD PATH"],
    "open": ["[--base-url URL]", "PATH"],
}


@pytest.mark.parametrize(("command", "names"), NAMES.items())
def test_argument_names_are_those_of_the_docs(command: str, names: list[str]) -> None:
    parser = dict(parsers())[f"connect-dev {command}"]
    usage = " ".join(parser.format_usage().split())
    for name in names:
        assert name in usage


def test_the_help_is_the_same_on_every_python() -> None:
    """An option with a value is written once, as Python 3.13 does (`-o, --output PATH`), and
    no line breaks inside connect-dev."""
    text = commands_doc.help_text(dict(parsers())["connect-dev forge convert"])
    assert "  -o, --output PATH  " in text
    assert re.search(r"connect-$", commands_doc.help_text(cli._build_parser()), re.M) is None


def test_docs_commands_md_is_the_help_of_every_command() -> None:
    doc = commands_doc.DOC.read_text(encoding="utf-8")
    regenerated, documented = commands_doc.render(doc, cli._build_parser())
    if regenerated != doc:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts/commands_doc.py"), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        pytest.fail(f"docs/commands.md differs from --help:\n{result.stdout}{result.stderr}")
    every = [words for words, _ in commands_doc.commands(cli._build_parser())]
    missing = [" ".join(("connect-dev", *words)) for words in every if words not in documented]
    assert missing == [], "commands without a help block in docs/commands.md"


def test_one_wording_for_how_to_stop() -> None:
    """The text mode stops on Ctrl-C, the dashboard on q too: each says so in the same words,
    in the `ready` line, the demo's banner, `up --help` and the README."""
    assert STOP_TEXT == "Ctrl-C: uninstall and quit"
    assert f"q or {STOP_TEXT}" == STOP_DASHBOARD
    up = dict(parsers())["connect-dev up"]
    assert f"({STOP_TEXT})" in " ".join(up.format_help().split())
    assert f"({STOP_DASHBOARD})" in " ".join(up.format_help().split())
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert STOP_TEXT in readme
    assert STOP_DASHBOARD in readme
    old = re.compile(r"Ctrl-C to uninstall|[Uu]ninstalls and exits|q uninstalls|loop, until Ctrl-C")
    places = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    places += sorted((ROOT / "connect_devloop").rglob("*.py"))
    stale = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in places
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if old.search(line)
    ]
    assert stale == []
