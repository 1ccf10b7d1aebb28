"""The stand-in Forge CLI's command line: the options `@forge/cli` 13.3.0 declares for the commands
the ``forge`` registrar runs, parsed by the rules of the commander 14 parser the real CLI uses.

An argv is accepted here exactly when the real parser accepts it, which tests/forge_cli checks
against the real package: known options anywhere after their command (a parent's options after
its subcommand too), ``--flag=value`` and ``-fvalue``, an optional value taken from the next
argument unless that looks like an option, variadic values up to the next option, no operands.
Other Forge commands (``forge deploy list``, ``forge lint``...) parse as the real CLI parses them
only when declared here; the stand-in does not run them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FORGE_CLI_VERSION",
    "ArgvError",
    "Invocation",
    "OptionSpec",
    "parse_argv",
]

FORGE_CLI_VERSION = "13.3.0"


class ArgvError(Exception):
    """The real CLI refuses this argv before running anything. ``unknown_command`` marks its
    "... is not a Forge command." form, which it prints with its own hint."""

    def __init__(self, message: str, *, unknown_command: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.unknown_command = unknown_command


@dataclass(frozen=True)
class Invocation:
    """What the command line asks for: ``command`` is ``"deploy"``, ``"install list"``, ...;
    ``options`` are the command's own option values under commander's names (``nonInteractive``,
    ``verify``...); ``help``/``version`` are set when the CLI would only print those."""

    command: str
    options: dict[str, Any]
    help: bool = False
    version: bool = False


@dataclass(frozen=True)
class OptionSpec:
    """One option as commander declares it, e.g. ``"-e, --environment [environment]"``."""

    flags: str
    default: Any = None
    hidden: bool = False

    @property
    def short(self) -> str | None:
        return next((f for f in self._names() if not f.startswith("--")), None)

    @property
    def long(self) -> str | None:
        return next((f for f in self._names() if f.startswith("--")), None)

    @property
    def takes_value(self) -> str:
        """``"required"`` (``<value>``), ``"optional"`` (``[value]``) or ``""``."""
        if "<" in self.flags:
            return "required"
        return "optional" if "[" in self.flags else ""

    @property
    def variadic(self) -> bool:
        return "..." in self.flags

    @property
    def negate(self) -> bool:
        return bool(self.long and self.long.startswith("--no-"))

    @property
    def attribute(self) -> str:
        name = (self.long or self.short or "").lstrip("-")
        if self.negate:
            name = name.removeprefix("no-")
        head, *rest = name.split("-")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)

    def _names(self) -> list[str]:
        return [part for part in re.split(r"[ ,|]+", self.flags) if part.startswith("-")]


@dataclass
class CommandSpec:
    name: str
    options: tuple[OptionSpec, ...]
    has_action: bool
    commands: list[CommandSpec] = field(default_factory=list)
    parent: CommandSpec | None = field(default=None, repr=False)

    def add(self, command: CommandSpec) -> CommandSpec:
        command.parent = self
        self.commands.append(command)
        return command

    def find(self, name: str) -> CommandSpec | None:
        return next((c for c in self.commands if c.name == name), None)

    def find_option(self, flag: str) -> OptionSpec | None:
        return next((o for o in self.options if flag in (o.short, o.long)), None)

    @property
    def path(self) -> str:
        names: list[str] = []
        command: CommandSpec | None = self
        while command is not None and command.parent is not None:
            names.insert(0, command.name)
            command = command.parent
        return " ".join(names)


# Every command the real CLI creates has these two (command.js `command()`).
_COMMON = (OptionSpec("--no-color", hidden=True), OptionSpec("--verbose"))
_APP_ID_OVERRIDE = OptionSpec("--app-id-override <appId>")
_ENVIRONMENT = OptionSpec("-e, --environment [environment]")
_SITE = OptionSpec("-s, --site [site]")
_PRODUCT = OptionSpec("-p, --product [Atlassian app]")
_HELP_FLAGS = ("-h", "--help")


def _program() -> CommandSpec:
    # Read from @forge/cli 13.3.0: out/command-line/command.js and register-*-commands.js.
    program = CommandSpec(
        "forge",
        (OptionSpec("--version"), OptionSpec("--no-color", hidden=True), OptionSpec("--verbose")),
        has_action=False,
    )
    deploy = program.add(
        CommandSpec(
            "deploy",
            (
                *_COMMON,
                OptionSpec("-f, --no-verify"),
                OptionSpec("-v, --major-version [version]"),
                OptionSpec("-t, --tag <tag>"),
                OptionSpec("--skip-rollout"),
                OptionSpec("--approve <rule...>"),
                _ENVIRONMENT,
                OptionSpec("--non-interactive"),
            ),
            has_action=True,
        )
    )
    deploy.add(CommandSpec("list", (*_COMMON, OptionSpec("--json", default=False)), True))
    install = program.add(
        CommandSpec(
            "install",
            (
                *_COMMON,
                _APP_ID_OVERRIDE,
                _ENVIRONMENT,
                _SITE,
                _PRODUCT,
                OptionSpec("--upgrade [target]"),
                OptionSpec("--confirm-scopes", default=False),
                OptionSpec("-l, --license [license]"),
                OptionSpec("--license-modes [licenseModes...]"),
                OptionSpec("--users-with-access [user...]"),
                OptionSpec("--major-version <majorVersion>"),
                OptionSpec("--non-interactive"),
            ),
            has_action=True,
        )
    )
    install.add(
        CommandSpec("list", (*_COMMON, _APP_ID_OVERRIDE, OptionSpec("--json", default=False)), True)
    )
    program.add(
        CommandSpec(
            "uninstall",
            (
                *_COMMON,
                _SITE,
                _PRODUCT,
                _ENVIRONMENT,
                OptionSpec("--batch", default=False),
                OptionSpec("-i, --installation-id <installationId>"),
                _APP_ID_OVERRIDE,
            ),
            has_action=True,
        )
    )
    return program


PROGRAM = _program()


def parse_argv(argv: Sequence[str]) -> Invocation:
    """Parse ``argv`` (without the program name) as the real CLI would; raise ``ArgvError`` with
    the real CLI's message when it refuses the argv before running anything."""
    args = list(argv)
    _assert_valid_args(args)
    values: dict[str, dict[str, Any]] = {}
    try:
        return _parse_command(PROGRAM, [], args, values)
    except _ExcessArguments:
        # Command.unknownCommand names the argv up to the first word that is not a command.
        words = _up_to_first_non_command(args)
        raise ArgvError(_invalid_command(words), unknown_command=True) from None


class _ExcessArguments(Exception):
    """Commander's "too many arguments", which the real CLI reports as an unknown command."""


def _up_to_first_non_command(args: list[str]) -> list[str]:
    commands = PROGRAM.commands
    for index, arg in enumerate(args):
        match = next((c for c in commands if c.name == arg), None)
        if match is None:
            return args[: index + 1]
        commands = match.commands
    return args


def _assert_valid_args(args: list[str]) -> None:
    # Command.assertValidArgs: leading words must name commands, before commander sees them.
    commands = PROGRAM.commands
    words: list[str] = []
    for arg in args:
        if arg.startswith("-"):
            break
        if arg == "help":
            return
        match = next((c for c in commands if c.name == arg), None)
        words.append(arg)
        if match is None:
            raise ArgvError(_invalid_command(words), unknown_command=True)
        commands = match.commands
        if not commands:
            break


def _invalid_command(words: list[str]) -> str:
    return f"\u2019{' '.join(words)}\u2019 is not a Forge command."


def _parse_command(
    command: CommandSpec,
    operands: list[str],
    unknown: list[str],
    values: dict[str, dict[str, Any]],
) -> Invocation:
    own = values.setdefault(command.path, _defaults(command))
    more_operands, unknown = _parse_options(command, unknown, own)
    if own.get("version") and command is PROGRAM:
        # The version option prints and exits as soon as the program's options are read.
        return Invocation("", own, version=True)
    operands = operands + more_operands
    if operands and (sub := command.find(operands[0])) is not None:
        return _parse_command(sub, operands[1:], unknown, values)
    if any(arg in _HELP_FLAGS for arg in unknown):
        return Invocation(command.path, own, help=True)
    if command.commands and not operands and not unknown and not command.has_action:
        # Commander prints help and exits 1: the real CLI's usage error.
        raise ArgvError("no command given: the CLI shows its help and exits 1")
    if unknown:
        raise ArgvError(_unknown_option(command, unknown[0]))
    if operands:
        raise _ExcessArguments
    if not command.has_action:
        raise ArgvError("no command given: the CLI shows its help and exits 1")
    return Invocation(command.path, own)


def _defaults(command: CommandSpec) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for option in command.options:
        if option.negate:
            defaults[option.attribute] = True
        elif option.default is not None:
            defaults[option.attribute] = option.default
    return defaults


def _parse_options(
    command: CommandSpec, args: list[str], values: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """commander's ``Command.parseOptions``: this command's options out of ``args``; the rest is
    operands, then (from the first unknown option on) unknown arguments for a subcommand."""
    operands: list[str] = []
    unknown: list[str] = []
    dest = operands
    variadic: OptionSpec | None = None
    pending = list(args)
    while pending:
        arg = pending.pop(0)
        if arg == "--":
            if dest is unknown:
                dest.append(arg)
            dest.extend(pending)
            break
        if variadic is not None and not _maybe_option(arg):
            _store(values, variadic, arg)
            continue
        variadic = None
        if _maybe_option(arg) and (option := command.find_option(arg)) is not None:
            if option.takes_value == "required":
                if not pending:
                    raise ArgvError(f"option '{option.flags}' argument missing")
                _store(values, option, pending.pop(0))
            elif option.takes_value == "optional":
                value = pending.pop(0) if pending and not _maybe_option(pending[0]) else None
                _store(values, option, value)
            else:
                _store(values, option, None)
            variadic = option if option.variadic else None
            continue
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-":
            option = command.find_option(f"-{arg[1]}")
            if option is not None:
                if option.takes_value:
                    # `-edevelopment`, `-v3`: commander combines a short flag and its value.
                    _store(values, option, arg[2:])
                else:
                    # A group of boolean shorts (`-fh`) goes on one by one.
                    _store(values, option, None)
                    pending.insert(0, f"-{arg[2:]}")
                continue
        if re.match(r"^--[^=]+=", arg):
            name, _, value = arg.partition("=")
            option = command.find_option(name)
            if option is not None and option.takes_value:
                _store(values, option, value)
                continue
        if dest is operands and _maybe_option(arg):
            dest = unknown
        dest.append(arg)
    return operands, unknown


def _maybe_option(arg: str) -> bool:
    return len(arg) > 1 and arg[0] == "-"


def _store(values: dict[str, Any], option: OptionSpec, value: str | None) -> None:
    name = option.attribute
    if option.negate:
        values[name] = False
    elif option.variadic and value is not None:
        previous = values.get(name)
        values[name] = [*previous, value] if isinstance(previous, list) else [value]
    elif value is None:
        values[name] = True if option.takes_value != "required" else value
    else:
        values[name] = value


def _unknown_option(command: CommandSpec, flag: str) -> str:
    suggestion = ""
    if flag.startswith("--"):
        candidates: list[str] = []
        node: CommandSpec | None = command
        while node is not None:
            candidates += [o.long for o in node.options if o.long and not o.hidden]
            candidates.append("--help")
            node = node.parent
        suggestion = _suggest_similar(flag, candidates)
    return f"unknown option '{flag}'{suggestion}"


def _suggest_similar(word: str, candidates: Iterable[str]) -> str:
    # commander's suggestSimilar: Damerau-Levenshtein distance, at most 3, similarity > 0.4.
    names = sorted({c[2:] for c in candidates})
    target = word[2:]
    best, similar = 3, []
    for candidate in names:
        if len(candidate) <= 1:
            continue
        distance = _edit_distance(target, candidate)
        length = max(len(target), len(candidate))
        if (length - distance) / length > 0.4:
            if distance < best:
                best, similar = distance, [candidate]
            elif distance == best:
                similar.append(candidate)
    flags = [f"--{name}" for name in sorted(similar)]
    if len(flags) > 1:
        return f"\n(Did you mean one of {', '.join(flags)}?)"
    return f"\n(Did you mean {flags[0]}?)" if flags else ""


def _edit_distance(a: str, b: str) -> int:
    if abs(len(a) - len(b)) > 3:
        return max(len(a), len(b))
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for j in range(1, len(b) + 1):
        for i in range(1, len(a) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]
