"""Forge-loop figures: a real `connect-dev up` whose forge registrar runs the Forge CLI
EMULATION (connect_devloop/forge/standin.py) against an emulated Jira that plays Forge's
servers, on loopback.

    python benchmarks/forge.py [--saves 20] [--burst 20] [--deploy-seconds 5]

Prints:
  1. save -> deploy started: from writing the descriptor to the registrar's `forge_step deploy
     started` event (the daemon's own timestamp), median and p95 over --saves lone saves, each
     a change Forge sees (a new page name), with where the time goes: save -> `registering`
     (the watcher and the worker), -> `validate` done (the manifest's Connect parts written and
     checked), -> deploy started (the ledger write; `forge install list --json` is asked only
     until the run's first install, which happens before these saves);
  2. deploys for a burst of --burst saves 50 ms apart while a --deploy-seconds deploy runs (the
     emulated Forge's deploy delay), and whether the last save is what the site has.
The emulated CLI is a Python process: its start-up (~0.1 s) is in every CLI step; the real
@forge/cli (Node) takes longer to start and talks to Atlassian.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import accepting_addon, percentile, print_summary, stop

from connect_devloop.forge.convert import update_manifest
from connect_devloop.forge.manifest import PLACEHOLDER_APP_ID
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.host.forge import forge_site

APP_ID = "ari:cloud:ecosystem::app/b3c4d5e6-0000-4000-8000-00000000f0a9"
KEY = "bench-forge-addon"
BURST_GAP_S = 0.05
QUIET_S = 0.35  # longer than the registrar's settle window: each lone save is on its own


def descriptor(page: str) -> str:
    return json.dumps(
        {
            "key": KEY,
            "name": "bench",
            "baseUrl": "{{localBaseUrl}}",
            "authentication": {"type": "jwt"},
            "apiMigrations": {"signed-install": True},
            "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
            "scopes": ["read"],
            "modules": {"generalPages": [{"key": "page", "name": {"value": page}, "url": "/page"}]},
        },
        indent=2,
    )


def write_project(directory: Path, addon_url: str, site: str) -> Path:
    (directory / "atlassian-connect.json").write_text(descriptor("start"), encoding="utf-8")
    manifest = update_manifest(None, json.loads(descriptor("start")), "jira").text
    (directory / "manifest.yml").write_text(manifest.replace(PLACEHOLDER_APP_ID, APP_ID))
    command = json.dumps([sys.executable, "-m", "connect_devloop.forge.standin"])
    config = directory / "connect-dev.toml"
    config.write_text(
        f'[addon]\nurl = "{addon_url}"\n[proxy]\nport = 0\n[tunnel]\nprovider = "none"\n'
        f'[forge]\ncommand = {command}\non_exit = "uninstall"\n'
        f'[[hosts]]\nname = "forge"\nregistrar = "forge"\nsite = "{site}"\nproduct = "jira"\n',
        encoding="utf-8",
    )
    return config


@dataclass
class Daemon:
    """A real `connect-dev up --no-tui --log-format json`; its events as they come."""

    process: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))
                self.changed.set()
        self.changed.set()

    def of(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["event"] == name and all(e.get(k) == v for k, v in fields.items())
        ]

    async def wait(self, name: str, count: int = 1, timeout: float = 60, **fields: Any) -> None:
        async with asyncio.timeout(timeout):
            while len(self.of(name, **fields)) < count:
                if self.process.returncode is not None:
                    raise RuntimeError(f"`up` exited before {count} {name}: {self.events[-5:]}")
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running_up(config: Path) -> AsyncIterator[Daemon]:
    env = dict(os.environ)
    # The emulated CLI checks that a login is set and never sends it; no keychain is asked.
    env.update(
        FORGE_EMAIL="bench@example.invalid",
        FORGE_API_TOKEN="bench-not-a-token",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "connect_devloop", "up", "--no-tui", "--log-format", "json"),
        *("--config", str(config)),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    daemon = Daemon(process)
    reader = asyncio.create_task(daemon.read())
    try:
        await daemon.wait("ready")
        if daemon.of("registration_failed"):
            raise RuntimeError(f"the first install failed: {daemon.of('registration_failed')}")
        yield daemon
    finally:
        await stop(process, signal.SIGINT)
        await reader


@dataclass
class LoneSave:
    """ms from the write of the descriptor to each event of its deploy."""

    registering: float
    validated: float
    deploy_started: float


async def lone_saves(daemon: Daemon, path: Path, saves: int) -> list[LoneSave]:
    results = []
    for n in range(saves):
        await asyncio.sleep(QUIET_S)
        before = len(daemon.of("registered"))
        written_at = time.time()
        path.write_text(descriptor(f"lone {n}"), encoding="utf-8")
        await daemon.wait("registered", before + 1)
        registering = daemon.of("registering")[-1]
        validated = daemon.of("forge_step", step="validate", state="done")[-1]
        deployed = daemon.of("forge_step", step="deploy", state="started")[-1]
        results.append(
            LoneSave(
                *((event["ts"] - written_at) * 1000 for event in (registering, validated, deployed))
            )
        )
    return results


async def burst(
    daemon: Daemon, host: EmulatedHost, path: Path, saves: int, deploy_seconds: float
) -> tuple[int, bool]:
    """Deploys started for ``saves`` saves BURST_GAP_S apart during a slow deploy, and whether
    the site ends with the last one."""
    host.set_forge_deploy_delay(round(deploy_seconds * 1000))
    await asyncio.sleep(QUIET_S)
    before = len(daemon.of("forge_step", step="deploy", state="started"))
    last = f"burst {saves}"
    for n in range(1, saves + 1):
        path.write_text(descriptor(f"burst {n}"), encoding="utf-8")
        await asyncio.sleep(BURST_GAP_S)

    def installed_page() -> str | None:
        connect = host.installations.get(KEY)
        if connect is None:
            return None
        return str(connect.descriptor["modules"]["generalPages"][0]["name"]["value"])

    async with asyncio.timeout(4 * deploy_seconds + 30):
        while installed_page() != last:  # noqa: ASYNC110 - the site's state has no event
            await asyncio.sleep(0.05)
    # Anything still coming (a third deploy) would start within the settle window.
    await asyncio.sleep(1.0)
    deploys = len(daemon.of("forge_step", step="deploy", state="started")) - before
    return deploys, installed_page() == last


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saves", type=int, default=20, help="lone saves timed (default 20)")
    parser.add_argument("--burst", type=int, default=20, help="saves in the burst (default 20)")
    parser.add_argument(
        "--deploy-seconds", type=float, default=5.0, help="the slow deploy (default 5 s)"
    )
    args = parser.parse_args()

    async with run_host() as host, accepting_addon() as addon:
        with tempfile.TemporaryDirectory() as directory:
            config = write_project(Path(directory), addon, forge_site(host))
            descriptor_path = Path(directory) / "atlassian-connect.json"
            async with running_up(config) as daemon:
                timings = await lone_saves(daemon, descriptor_path, args.saves)
                deploys, last_won = await burst(
                    daemon, host, descriptor_path, args.burst, args.deploy_seconds
                )

    def median(figure: str) -> float:
        return float(statistics.median(getattr(t, figure) for t in timings))

    started = [t.deploy_started for t in timings]
    print(
        f"save -> deploy started ({args.saves} lone saves): median {median('deploy_started'):.1f}"
        f" ms, p95 {percentile(started, 0.95):.1f} ms  [target: < 50 ms]"
    )
    print(
        f"  of which: save -> registering {median('registering'):.1f} ms, -> validate done "
        f"{median('validated'):.1f} ms, -> deploy started {median('deploy_started'):.1f} ms "
        "(medians; the last stretch is the ledger write)"
    )
    print(
        f"burst of {args.burst} saves {BURST_GAP_S * 1000:.0f} ms apart during a "
        f"{args.deploy_seconds:g} s deploy: {deploys} deploys, last save installed: "
        f"{'yes' if last_won else 'NO'}  [target: <= 2]"
    )
    print_summary(
        {
            "save -> deploy started median ms": median("deploy_started"),
            "save -> deploy started p95 ms": percentile(started, 0.95),
            "save -> registering median ms": median("registering"),
            "save -> validate done median ms": median("validated"),
            "burst deploys": deploys,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
