"""Keep the help blocks of docs/commands.md equal to `connect-dev ... --help`.

Every ```text block of docs/commands.md whose first line is ``usage: connect-dev [COMMAND ...]``
is that command's whole ``--help``, as an 80-column terminal shows it. Run

    python scripts/commands_doc.py          # rewrite the blocks from --help
    python scripts/commands_doc.py --check  # exit 1 with a diff when they differ

tests/test_cli_help.py runs the check, and also fails when a command has no block.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "commands.md"
COLUMNS = "80"
# A help block: the fence, `usage: connect-dev` and the command's words, ..., the closing fence.
BLOCK = re.compile(r"^```text\n(usage: connect-dev((?: [a-z][a-z-]*)*)\b.*?)^```$", re.M | re.S)


def _parser() -> argparse.ArgumentParser:
    sys.path.insert(0, str(ROOT))
    from connect_devloop import cli

    return cli._build_parser()


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser with the words that name it: (), ("up",), ("forge", "convert"), ..."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def help_text(parser: argparse.ArgumentParser) -> str:
    """``--help`` as an 80-column terminal without colours shows it."""
    saved = {name: os.environ.get(name) for name in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=COLUMNS, NO_COLOR="1")
    try:
        return parser.format_help()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def render(text: str, parser: argparse.ArgumentParser) -> tuple[str, list[tuple[str, ...]]]:
    """``text`` with every help block regenerated, and the commands that have a block."""
    parsers = dict(commands(parser))
    found: list[tuple[str, ...]] = []

    def regenerate(match: re.Match[str]) -> str:
        words = tuple(match[2].split())
        if words not in parsers:
            raise SystemExit(
                f"{DOC}: a help block of `connect-dev {' '.join(words)}`: no such command"
            )
        found.append(words)
        return f"```text\n{help_text(parsers[words])}```"

    return BLOCK.sub(regenerate, text), found


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--check", action="store_true", help="only compare; exit 1 on a diff")
    args = options.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new, _ = render(text, _parser())
    if new == text:
        return 0
    if args.check:
        sys.stdout.writelines(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                new.splitlines(keepends=True),
                "docs/commands.md",
                "docs/commands.md from --help",
            )
        )
        print("\ndocs/commands.md differs from --help: run python scripts/commands_doc.py")
        return 1
    DOC.write_text(new, encoding="utf-8")
    print(f"rewrote the help blocks of {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
