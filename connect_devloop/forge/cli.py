"""Running the Forge CLI (``forge``) for the ``forge`` registrar, and explaining its failures.

Every command runs with ``--non-interactive`` where it has one, stdin closed, and in a session of
its own, so that the user's Ctrl-C reaches connect-dev and not a deploy halfway through (a
deploy is never killed by us, except at its time bound). The login (``FORGE_EMAIL``,
``FORGE_API_TOKEN``) and the manifest's variables reach it through its environment only, never
its arguments; ``FORGE_DISABLE_ANALYTICS`` is set because without an analytics choice every
command would try to prompt (@forge/cli 13.3.0: "--non-interactive requires an analytics
setting").

The CLI prints everything to stdout and exits 1 on any error (``Error: <message>``). Its lines
go to the debug log as they come, with any secret masked; a failure becomes a ``ForgeError``
whose message is the CLI's own error line and whose hint says what to do (``explain``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ForgeError

__all__ = ["ANALYTICS_ENV", "CliRun", "ForgeCli", "explain"]

logger = logging.getLogger(__name__)

ANALYTICS_ENV = "FORGE_DISABLE_ANALYTICS"
KEPT_LINES = 5000  # of a command's output: all of `install list --json` for any real app
STOP_GRACE_S = 5.0  # after SIGTERM at a time bound, before SIGKILL
INSTALL_CLI_HINT = (
    "Install the Forge CLI: `npm install -g @forge/cli` (add `--ignore-scripts` where its "
    "downloads from GitHub are blocked), or point [forge] command in connect-dev.toml at it."
)


@dataclass(frozen=True)
class CliRun:
    """One finished command: its exit code and the last lines of its output."""

    args: tuple[str, ...]
    code: int
    lines: tuple[str, ...]
    duration_ms: int

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


class ForgeCli:
    """``command`` is the CLI and any words before its arguments (``("forge",)``); it runs in
    ``directory`` (where manifest.yml is). ``secrets`` are masked in every line kept or logged.
    ``on_output`` is called for every line (a sign of life for the registrar)."""

    def __init__(
        self,
        command: Sequence[str],
        directory: Path,
        *,
        secrets: Callable[[], Sequence[str]] = tuple,
        on_output: Callable[[], None] | None = None,
    ) -> None:
        self.command = tuple(command)
        self.directory = directory
        self._secrets = secrets
        self._on_output = on_output
        self.running: asyncio.subprocess.Process | None = None

    def describe(self, args: Sequence[str]) -> str:
        """How a user would type it (for messages): the CLI's name and its arguments."""
        return " ".join(["forge", *args])

    async def run(
        self, args: Sequence[str], env: Mapping[str, str], *, time_limit: float
    ) -> CliRun:
        """Run ``forge ARGS`` with ``env`` added to this process's environment. Raises
        ``ForgeError`` when the CLI cannot be started or outlives ``time_limit`` seconds; a
        non-zero exit is returned, for the caller to ``explain``."""
        started = time.monotonic()
        environment = {**os.environ, ANALYTICS_ENV: "1", **env}
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command,
                *args,
                cwd=self.directory,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            missing = exc.filename or self.command[0]
            if not self.directory.is_dir():
                raise ForgeError(
                    f"cannot run the Forge CLI in {self.directory}: no such directory",
                    "Check [forge] manifest in connect-dev.toml.",
                ) from exc
            raise ForgeError(f"the Forge CLI was not found: {missing}", INSTALL_CLI_HINT) from exc
        except PermissionError as exc:
            raise ForgeError(
                f"the Forge CLI cannot be run: {exc.filename or self.command[0]}: permission "
                "denied",
                INSTALL_CLI_HINT,
            ) from exc
        self.running = process
        lines: deque[str] = deque(maxlen=KEPT_LINES)
        try:
            await asyncio.wait_for(self._read(process, lines), time_limit)
            code = await process.wait()
        except TimeoutError:
            await self._stop(process)
            raise ForgeError(
                f"`{self.describe(args)}` did not finish within {time_limit:g} s; it was stopped",
                "Forge may be slow or unreachable; try again, or raise the [forge] "
                f"{args[0]}_timeout in connect-dev.toml. Its last lines:\n"
                + "\n".join(line for line in lines if line.strip())[-1500:],
            ) from None
        finally:
            self.running = None
        return CliRun(tuple(args), code, tuple(lines), round((time.monotonic() - started) * 1000))

    async def _read(self, process: asyncio.subprocess.Process, lines: deque[str]) -> None:
        assert process.stdout is not None
        secrets = [secret for secret in self._secrets() if secret]
        while raw := await process.stdout.readline():
            line = raw.decode("utf-8", "replace").rstrip()
            for secret in secrets:
                line = line.replace(secret, "********")
            if self._on_output is not None:
                self._on_output()
            # Blank lines are kept: one ends the paragraph of an error message (error_line).
            lines.append(line)
            if line.strip():
                logger.debug("forge: %s", line)

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM to the CLI's process group, then SIGKILL: nothing it started lingers."""
        for how in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, how)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
                return


def error_line(run: CliRun) -> str:
    """The CLI's ``Error: ...`` message (with the lines after it up to the next blank one),
    else its last line."""
    lines = list(run.lines)
    for index, line in enumerate(lines):
        if line.startswith("Error: "):
            message = [line.removeprefix("Error: ")]
            for more in lines[index + 1 :]:
                if not more.strip() or more.startswith("Rerunning the command with --verbose"):
                    break
                message.append(more)
            return " ".join(part.strip() for part in message if part.strip())
    shown = [line for line in lines if line.strip()]
    return shown[-1] if shown else f"exit code {run.code}, no output"


# What the CLI says (its texts in @forge/cli-shared 13.3.0, out/ui/text.js) → what to do.
_HINTS: tuple[tuple[str, str], ...] = (
    (
        "Not logged in",
        "Run `connect-dev login --forge` (keeps your Atlassian email and API token in the "
        "keychain), or set both FORGE_EMAIL and FORGE_API_TOKEN; a token is made at "
        "https://id.atlassian.com/manage-profile/security/api-tokens.",
    ),
    (
        "API token on your machine is no longer valid",
        "Make a new API token at https://id.atlassian.com/manage-profile/security/api-tokens "
        "and store it with `connect-dev login --forge` (or in FORGE_API_TOKEN).",
    ),
    (
        "Your app could not be found",
        "app.id in manifest.yml names no app your account can see: run `forge register` in the "
        "manifest's directory (it writes a new app.id), or log in as the app's owner.",
    ),
    (
        "app must have required property 'id'",
        "Run `forge register` in the manifest's directory: it writes app.id into manifest.yml.",
    ),
    (
        "doesn't belong to an Atlassian site",
        "Check this host's `site` in connect-dev.toml: the site's host name, such as "
        "your-site.atlassian.net.",
    ),
    (
        "not an Atlassian site",
        "Check this host's `site` in connect-dev.toml: the site's host name, such as "
        "your-site.atlassian.net.",
    ),
    (
        "is not activated on",
        "The site does not have this product: check this host's `product` (jira or "
        "confluence) in connect-dev.toml.",
    ),
    (
        "different from the scopes in your most recent deployment",
        "The scopes changed since the last deploy; connect-dev deploys before it installs, so "
        "save again, or run `forge deploy` by hand to see the CLI's full output.",
    ),
    (
        "CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION",
        "Cloud refused the Connect modules: fix what the message names in "
        "atlassian-connect.json (connect-dev writes connectModules from it) and save.",
    ),
    (
        "connectModules are defined incorrectly",
        "Cloud refused the Connect modules: run `connect-dev validate`, fix "
        "atlassian-connect.json and save.",
    ),
    (
        "requires an analytics setting",
        "Run `forge settings set usage-analytics false` once (connect-dev sets "
        f"{ANALYTICS_ENV}, which this CLI did not take).",
    ),
    (
        "Unsupported Node.js version",
        "Install a Node.js the Forge CLI supports (22 or 24 LTS), then run it again.",
    ),
    (
        "Changing the app.connect.key",
        "The app's Connect key changed since the last deploy, and the CLI asks for a "
        "confirmation only on a terminal: run `forge deploy` there once, or keep the key.",
    ),
    (
        "App is already installed",
        "connect-dev asks `forge install list` first and upgrades what is installed; run "
        "`forge install list` to see what the site has.",
    ),
)


def explain(step: str, run: CliRun, cli: ForgeCli) -> ForgeError:
    """A failed command as an error: ``forge <step>`` failed: the CLI's message, and a hint."""
    message = error_line(run)
    output = run.output
    hint = next((hint for text, hint in _HINTS if text in output), None)
    if hint is None:
        hint = (
            f"Run `{cli.describe(run.args)}` in {cli.directory} to see the whole output, or "
            "`connect-dev up -v` for the CLI's lines in the log."
        )
    return ForgeError(f"forge {step} failed: {message}", hint)
