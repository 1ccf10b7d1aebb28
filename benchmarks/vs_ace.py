"""The dev loop users run, beside atlassian-connect-express's own, in the same run on loopback.

    python benchmarks/vs_ace.py [--saves 10] [--ace-cache DIR]

Needs node and npm. ACE 11.5.3 (tests/ace/package.json, the pins tests/test_ace.py uses) is
installed with `npm install` into --ace-cache (default ~/.cache/connect-devloop-bench/ace-11.5.3)
on the first run and reused after.

Two stacks run side by side, each against its own emulated Jira (`run_host`, in this process,
Cloud-like: signed installs required):
  - ACE: benchmarks/ace/devloop.js, an app built as ACE's template builds one, in its own loop:
    it calls `addon.register()` once it listens (development mode), and ACE itself watches
    atlassian-connect.json with fs.watch and calls `register(true)` on every change event. The
    host is listed in config.json `development.hosts` (`http://admin:admin@127.0.0.1:P/jira`):
    ACE turns every credentials.json host into https (lib/internal/config.js,
    `includeCredentialsHosts`: `url.protocol("https")`), which a plain-HTTP local host cannot
    answer; config.json hosts keep their scheme, as for a local Atlassian SDK Jira. NODE_ENV is
    left unset (Express then runs in development, as `npm start` does): with NODE_ENV=development
    ACE 11.5.3 silently loses auto-registration, because atlassian-connect-validator 0.0.9 then
    requires its devDependency `longjohn`, which npm does not install ("Auto registration is not
    available for this add-on.").
  - connect-dev: the real `python -m connect_devloop up --no-tui --log-format json` subprocess,
    in front of the same ACE app with ACE's loop off (tests/ace/app.js: `watch: false`, never
    registers), so both stacks install the same add-on, which verifies the RS256 `installed`
    callback itself; only the dev loop differs.
A save is an in-place write of atlassian-connect.json (new `name`). Lone saves alternate between
the two stacks.

Prints:
  1. lone save -> installed: time from writing the descriptor to the emulated host recording the
     completed install of that save (the host's own timestamp of the first install whose
     descriptor carries the new name), median and p95 over --saves lone saves each, every save
     after the host has been quiet for --gap s; ratio of the medians (connect-dev / ACE);
  2. lone save -> install POSTs per save: how many installs each loop started per lone save
     (ACE's fs.watch can report one in-place write as two changes, and ACE registers on each);
  3. burst: a burst of 20 saves 50 ms apart: install POSTs the host received until it is quiet
     again (completed installs in brackets), for each, and the ratio;
  4. burst: whether the last save of the burst is what ends up installed (a correctness fact).
If ACE's own loop cannot run, the script says why on every ACE figure and exits with status 1.
Every wait has a timeout; every process started here is stopped (SIGINT / SIGTERM, then kill).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import free_port, percentile, print_summary

from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.host.record import HostRecord

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the ACE peer's npm install is shared with the tests

from tests.ace.npm import ACE_VERSION, AceUnavailable  # noqa: E402
from tests.ace.npm import ensure_ace as install_ace  # noqa: E402

PEER_APP = REPO_ROOT / "tests" / "ace" / "app.js"  # ACE with its own loop off
DEVLOOP_APP = Path(__file__).resolve().parent / "ace" / "devloop.js"  # ACE's own loop
DEFAULT_CACHE = Path.home() / ".cache" / "connect-devloop-bench" / f"ace-{ACE_VERSION}"
START_TIMEOUT_S = 60
INSTALL_TIMEOUT_S = 15
BURST_SAVES = 20
BURST_SPACING_S = 0.05
DESCRIPTOR: dict[str, Any] = {
    "key": "bench-addon",
    "name": "start",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "jwt"},
    "apiMigrations": {"signed-install": True},
    "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
    "scopes": ["read"],
    "modules": {},
}


class Unavailable(Exception):
    """A stack cannot run here; the message says why."""


def ensure_ace(directory: Path) -> Path:
    """node_modules with ACE and express, installed from the npm registry into ``directory``
    once (as tests/test_ace.py does) and reused after."""
    try:
        return install_ace(directory)
    except AceUnavailable as exc:
        raise Unavailable(str(exc)) from exc


class Child:
    """A subprocess whose stdout is read line by line: JSON lines become events, the rest is
    kept (the last lines) to explain a failure."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.events: list[dict[str, Any]] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=30)
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, *command: str, cwd: Path, env: dict[str, str]) -> Child:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(name, process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            self.tail.append(text)
            with contextlib.suppress(ValueError):
                event = json.loads(text)
                if isinstance(event, dict) and "event" in event:
                    self.events.append(event)
            self._changed.set()
        self._changed.set()

    async def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for event in self.events:
                        if event["event"] == name:
                            return event
                    if self.process.returncode is not None or self._reader.done():
                        raise Unavailable(f"{self.name} exited: {self.explain()}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            message = f"{self.name}: no {name!r} in {timeout:g} s: {self.explain()}"
            raise Unavailable(message) from None

    def explain(self) -> str:
        return " | ".join(line for line in self.tail if line.strip())[-800:]

    async def stop(self, sig: int, timeout: float = 10.0) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reader, 5)


@dataclass
class Stack:
    """One dev loop, its project directory and its own emulated host."""

    label: str
    project: Path
    host: EmulatedHost
    children: list[Child] = field(default_factory=list)

    @property
    def record(self) -> HostRecord:
        return self.host.record

    def save(self, name: str) -> None:
        (self.project / "atlassian-connect.json").write_text(
            json.dumps({**DESCRIPTOR, "name": name}, indent=2), encoding="utf-8"
        )

    async def quiet(self, seconds: float, timeout: float = 30.0) -> None:
        """Return once the host has had no UPM call for ``seconds``."""
        async with asyncio.timeout(timeout):
            seen, since = len(self.record.upm_calls), time.monotonic()
            while time.monotonic() - since < seconds:
                await asyncio.sleep(0.02)
                if len(self.record.upm_calls) != seen:
                    seen, since = len(self.record.upm_calls), time.monotonic()

    async def installed(self, name: str, start: int, timeout: float) -> float:
        """The host's timestamp of the first completed install of ``name`` after ``start``."""

        def find(record: HostRecord) -> float | None:
            for install in record.installs[start:]:
                if install.descriptor.get("name") == name:
                    return install.at
            return None

        await self.host.wait_for(lambda r: find(r) is not None, timeout=timeout)
        at = find(self.record)
        assert at is not None
        return at

    async def lone_save(self, name: str, gap: float) -> float:
        await self.quiet(gap)
        start = len(self.record.installs)
        written_at = time.time()
        self.save(name)
        return (await self.installed(name, start, INSTALL_TIMEOUT_S) - written_at) * 1000

    async def burst(self, gap: float) -> tuple[int, int, bool]:
        """(install POSTs, completed installs, last save installed) for a burst of saves."""
        await self.quiet(gap)
        posts, installs = len(self.record.install_posts), len(self.record.installs)
        began = time.monotonic()
        for n in range(BURST_SAVES):
            await asyncio.sleep(max(0.0, began + n * BURST_SPACING_S - time.monotonic()))
            self.save(f"burst {n}")
        last = f"burst {BURST_SAVES - 1}"
        with contextlib.suppress(TimeoutError):
            await self.installed(last, installs, INSTALL_TIMEOUT_S)
        await self.quiet(1.0, timeout=60)  # anything still coming would arrive now
        last_won = (
            bool(self.record.installs) and self.record.installs[-1].descriptor.get("name") == last
        )
        return (
            len(self.record.install_posts) - posts,
            len(self.record.installs) - installs,
            last_won,
        )


def node_env(modules: Path, port: int, host: EmulatedHost) -> dict[str, str]:
    env = {
        **os.environ,
        "NODE_PATH": str(modules),
        "AC_LOCAL_BASE_URL": f"http://127.0.0.1:{port}",
        "CONNECT_KEYS_CDN_URL": host.keys_url,
        "FORCE_COLOR": "0",
    }
    env.pop("NODE_ENV", None)  # see the docstring: "development" disables ACE's registration
    env.pop("AC_OPTS", None)
    return env


async def started(
    stack: Stack, child: Child, ready: Callable[[], Any], timeout: float = START_TIMEOUT_S
) -> None:
    """Wait for the stack's first install on its host (``ready`` may wait for more)."""
    stack.children.append(child)
    try:
        await ready()
        await stack.host.wait_for(lambda r: bool(r.installs), timeout=timeout)
    except TimeoutError:
        failed = "; ".join(f.error_message for f in stack.record.failed_installs)
        calls = [(c.method, c.path, c.status) for c in stack.record.upm_calls][-5:]
        raise Unavailable(
            f"{child.name}: nothing installed on its host in {timeout:g} s "
            f"(UPM calls {calls}; failed installs: {failed or 'none'}): {child.explain()}"
        ) from None


@contextlib.asynccontextmanager
async def ace_stack(modules: Path, directory: Path) -> AsyncIterator[Stack]:
    """ACE's own loop: devloop.js registers at start and on every descriptor change."""
    async with run_host(require_signed_install=True) as host:
        stack = Stack("ACE", directory, host)
        stack.save("start")
        port = free_port()
        hosts = [host.base_url.replace("://", "://admin:admin@", 1)]
        (directory / "config.json").write_text(
            json.dumps(
                {"development": {"port": port, "store": {"adapter": "memory"}, "hosts": hosts}}
            ),
            encoding="utf-8",
        )
        child = await Child.start(
            "ACE (own loop)",
            "node",
            str(DEVLOOP_APP),
            cwd=directory,
            env=node_env(modules, port, host),
        )
        try:
            await started(stack, child, lambda: child.wait_event("listening", START_TIMEOUT_S))
            yield stack
        finally:
            await child.stop(signal.SIGTERM)  # ACE deregisters on SIGTERM, then exits


@contextlib.asynccontextmanager
async def connect_dev_stack(modules: Path, directory: Path) -> AsyncIterator[Stack]:
    """The real `connect-dev up`, in front of the ACE app with ACE's loop off."""
    async with run_host(require_signed_install=True) as host:
        stack = Stack("connect-dev", directory, host)
        stack.save("start")
        proxy_port = free_port()
        addon = await Child.start(
            "ACE app behind connect-dev",
            "node",
            str(PEER_APP),
            cwd=directory,
            env=node_env(modules, proxy_port, host),
        )
        stack.children.append(addon)
        up: Child | None = None
        try:
            listening = await addon.wait_event("listening", START_TIMEOUT_S)
            config = directory / "connect-dev.toml"
            config.write_text(
                f'[addon]\nurl = "http://127.0.0.1:{listening["port"]}"\n'
                f'[proxy]\nport = {proxy_port}\n[tunnel]\nprovider = "none"\n'
                f'[[hosts]]\nname = "jira"\nurl = "{host.base_url}"\nusername = "admin"\n'
                'password = "admin"\n',
                encoding="utf-8",
            )
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
                ),
                "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            }
            up = await Child.start(
                "connect-dev up",
                sys.executable,
                "-m",
                "connect_devloop",
                "up",
                "--no-tui",
                "--log-format",
                "json",
                "--config",
                str(config),
                cwd=directory,
                env=env,
            )
            await started(stack, up, lambda: up.wait_event("ready", START_TIMEOUT_S))
            yield stack
        finally:
            if up is not None:
                await up.stop(signal.SIGINT)  # uninstalls, then exits
            await addon.stop(signal.SIGTERM)


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs > 0 else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saves", type=int, default=10, help="lone saves per stack")
    parser.add_argument("--gap", type=float, default=0.5, help="quiet seconds before a save")
    parser.add_argument("--ace-cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    try:
        modules = ensure_ace(args.ace_cache.expanduser().resolve())
    except Unavailable as error:
        print(f"ACE {ACE_VERSION} unavailable: {error}")
        return 1
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    print(
        f"ACE {ACE_VERSION} (node {node.stdout.strip()}) own loop vs `connect-dev up` "
        "(same ACE app behind it), each against its own emulated Jira on loopback",
        flush=True,
    )
    return asyncio.run(compare(modules, args.saves, args.gap))


async def compare(modules: Path, saves: int, gap: float) -> int:
    ace_error: str | None = None
    with tempfile.TemporaryDirectory() as temp:
        async with contextlib.AsyncExitStack() as stacks:
            (Path(temp) / "ace").mkdir()
            (Path(temp) / "connect-dev").mkdir()
            ours = await stacks.enter_async_context(
                connect_dev_stack(modules, Path(temp) / "connect-dev")
            )
            theirs: Stack | None = None
            try:
                theirs = await stacks.enter_async_context(ace_stack(modules, Path(temp) / "ace"))
            except Unavailable as error:
                ace_error = str(error)

            lone: dict[str, list[float]] = {"connect-dev": [], "ACE": []}
            live = [stack for stack in (ours, theirs) if stack is not None]
            posts_before = {stack.label: len(stack.record.install_posts) for stack in live}
            for n in range(saves):
                order = [ours, theirs] if n % 2 == 0 else [theirs, ours]
                for stack in order:
                    if stack is not None:
                        lone[stack.label].append(await stack.lone_save(f"save {n}", gap))
            lone_posts: dict[str, float] = {}
            for stack in live:
                await stack.quiet(gap)
                posts = len(stack.record.install_posts) - posts_before[stack.label]
                lone_posts[stack.label] = posts / max(1, saves)
            bursts = {stack.label: await stack.burst(gap) for stack in (theirs, ours) if stack}

    cd = lone["connect-dev"]
    cd_text = f"connect-dev median {statistics.median(cd):.1f} ms p95 {percentile(cd, 0.95):.1f} ms"
    cd_posts, cd_done, cd_won = bursts["connect-dev"]
    if theirs is None:
        unavailable = f"ACE unavailable ({ace_error})"
        print(f"lone save -> installed: {cd_text}; {unavailable}; ratio n/a  [goal: <= 1.0]")
        print(
            f"lone save -> install POSTs per save: connect-dev {lone_posts['connect-dev']:.2f}; "
            f"{unavailable}  [goal: 1]"
        )
        print(
            f"burst of {BURST_SAVES} saves 50 ms apart -> install POSTs: connect-dev {cd_posts} "
            f"({cd_done} completed); {unavailable}; ratio n/a  [goal: connect-dev <= 2]"
        )
        print(
            f"burst: last save installed: connect-dev {'yes' if cd_won else 'NO'}; "
            f"{unavailable}  [goal: yes]"
        )
        return 1
    ace = lone["ACE"]
    ace_posts, ace_done, ace_won = bursts["ACE"]
    print(
        f"lone save -> installed ({saves} lone saves each): {cd_text}; "
        f"ACE median {statistics.median(ace):.1f} ms p95 {percentile(ace, 0.95):.1f} ms; "
        f"ratio {ratio(statistics.median(cd), statistics.median(ace))} "
        f"(p95 {ratio(percentile(cd, 0.95), percentile(ace, 0.95))})  [goal: <= 1.0]"
    )
    print(
        f"lone save -> install POSTs per save: connect-dev {lone_posts['connect-dev']:.2f}; "
        f"ACE {lone_posts['ACE']:.2f}  [goal: 1]"
    )
    print(
        f"burst of {BURST_SAVES} saves 50 ms apart -> install POSTs: connect-dev {cd_posts} "
        f"({cd_done} completed); ACE {ace_posts} ({ace_done} completed); "
        f"ratio {ratio(cd_posts, ace_posts)}  [goal: connect-dev <= 2]"
    )
    print(
        f"burst: last save installed: connect-dev {'yes' if cd_won else 'NO'}; "
        f"ACE {'yes' if ace_won else 'NO'}  [goal: yes]"
    )
    print_summary(
        {
            "connect-dev lone save ms": statistics.median(cd),
            "ACE lone save ms": statistics.median(ace),
            "lone save ratio": statistics.median(cd) / statistics.median(ace),
            "lone save p95 ratio": percentile(cd, 0.95) / percentile(ace, 0.95),
            "connect-dev burst POSTs": cd_posts,
            "ACE burst POSTs": ace_posts,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
