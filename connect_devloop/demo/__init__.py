"""`connect-dev demo`: the whole dev loop on loopback, no Atlassian account needed.

Starts the emulated Jira, the sample add-on, and `up` against them, in a project directory that
holds a real ``connect-dev.toml`` and ``atlassian-connect.json``: edit the descriptor and watch
it re-install.

The host and the add-on run in this process, so they end with it whatever ends it. A temporary
project directory (no ``--dir``) is removed on every way out: a clean stop, a signal during
start-up, an error, and a forced quit in the text mode (``os._exit`` skips ``finally``: the
signal handler removes it first).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path

from aiohttp import web

from ..config import load_config
from .addon import create_app

__all__ = ["prepare_forge_project", "prepare_project", "run_demo", "serve_sample_addon"]

EDIT_NOTE = "  Edit the descriptor and save it: it is re-installed at once."

CONFIG_TEMPLATE = """\
# Written by `connect-dev demo`. Every key, explained: `connect-dev init --example`.
descriptor = "atlassian-connect.json"

[addon]
url = "{addon_url}"        # the sample add-on (an aiohttp app started by the demo)

[proxy]
port = 0                   # any free port

[tunnel]
provider = "none"          # the emulated host is on loopback: no tunnel needed

[[hosts]]
name = "demo-jira"
url = "{host_url}"
product = "jira"
username = "admin"
password = "admin"         # inline passwords are fine for hosts on loopback
"""


FORGE_CONFIG_TEMPLATE = """\
# Written by `connect-dev demo --forge`. Every key, explained: `connect-dev init --example`.
# The Forge path (docs/forge.md), offline: the Forge CLI is connect-dev's EMULATION of it, and
# the emulated host plays Forge's servers and the site.
descriptor = "atlassian-connect.json"

[addon]
url = "{addon_url}"        # the sample add-on (an aiohttp app started by the demo)

[proxy]
port = 0                   # any free port

[tunnel]
provider = "none"          # the emulated site is on loopback: no tunnel needed

[forge]
manifest = "manifest.yml"  # its Connect parts are written from the descriptor on every save
command = {command}
on_exit = "uninstall"      # the demo leaves nothing behind (the default, "keep", is for Cloud)

[[hosts]]
name = "demo-forge"
registrar = "forge"
site = "{site}"
product = "jira"
"""
# The emulation registers any app.id of this shape; a real one comes from `forge register`.
DEMO_APP_ID = "ari:cloud:ecosystem::app/c0ffee00-0000-4000-8000-00000000de70"
# The emulated Forge CLI checks that a login is set, never sends it: these are not secrets.
DEMO_FORGE_LOGIN = {"FORGE_EMAIL": "demo@example.invalid", "FORGE_API_TOKEN": "demo-not-a-token"}


def sample_descriptor() -> str:
    return resources.files(__package__).joinpath("atlassian-connect.json").read_text("utf-8")


def prepare_project(directory: Path, *, addon_url: str, host_url: str) -> Path:
    """Write the demo's config (always) and descriptor (unless the user already edited one)."""
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = directory / "atlassian-connect.json"
    if not descriptor.exists():
        descriptor.write_text(sample_descriptor(), encoding="utf-8")
    config = directory / "connect-dev.toml"
    config.write_text(CONFIG_TEMPLATE.format(addon_url=addon_url, host_url=host_url), "utf-8")
    return config


def prepare_forge_project(directory: Path, *, addon_url: str, site: str) -> Path:
    """The demo's project for the Forge path: its config, the descriptor (unless edited), and
    a manifest.yml converted from it with a registered app.id (unless one is there)."""
    from ..forge.convert import update_manifest
    from ..forge.manifest import PLACEHOLDER_APP_ID

    directory.mkdir(parents=True, exist_ok=True)
    descriptor = directory / "atlassian-connect.json"
    if not descriptor.exists():
        descriptor.write_text(sample_descriptor(), encoding="utf-8")
    manifest = directory / "manifest.yml"
    if not manifest.exists():
        document = json.loads(descriptor.read_text("utf-8"))
        text = update_manifest(None, document, "jira").text
        manifest.write_text(text.replace(PLACEHOLDER_APP_ID, DEMO_APP_ID), encoding="utf-8")
    command = json.dumps([sys.executable, "-m", "connect_devloop.forge.standin"])
    config = directory / "connect-dev.toml"
    config.write_text(
        FORGE_CONFIG_TEMPLATE.format(addon_url=addon_url, site=site, command=command), "utf-8"
    )
    return config


@contextlib.asynccontextmanager
async def serve_sample_addon(keys_url: str, port: int = 0) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(keys_url), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run_demo(
    *, project_dir: str | None, log_format: str | None, no_tui: bool, forge: bool = False
) -> int:
    if project_dir:
        directory = Path(project_dir).resolve()
        return asyncio.run(_demo(directory, log_format, no_tui, forge=forge, temporary=False))
    with _sigterm_as_sigint():
        # From here on a SIGTERM, like a Ctrl-C, ends start-up through the ``finally`` below.
        directory = Path(tempfile.mkdtemp(prefix="connect-dev-demo-")).resolve()
        try:
            return asyncio.run(_demo(directory, log_format, no_tui, forge=forge, temporary=True))
        finally:
            _remove(directory)


def _remove(directory: Path) -> None:
    """Remove the demo's temporary directory; never raises (it may run in a signal handler,
    just before ``os._exit``)."""
    shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_sigint() -> Iterator[None]:
    """Until ``up`` installs its handlers, SIGTERM would end the process on the spot (its
    default) and leave the temporary directory behind: let it do what SIGINT does then (in
    ``asyncio.run``: cancel the demo, whose cleanup runs)."""

    def on_sigterm(signum: int, frame: object) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # type: ignore[arg-type]
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        # asyncio.run may have put SIGTERM back to SIG_DFL already; ours goes either way.
        signal.signal(signal.SIGTERM, previous)


async def _demo(
    directory: Path, log_format: str | None, no_tui: bool, *, forge: bool, temporary: bool
) -> int:
    from .. import daemon
    from ..events import EventBus
    from ..host import run_host
    from ..host.forge import forge_site
    from ..render.text import STOP_DASHBOARD, STOP_TEXT

    async with run_host(context_path="/jira") as host, serve_sample_addon(host.keys_url) as addon:
        if forge:
            for name, value in DEMO_FORGE_LOGIN.items():
                os.environ.setdefault(name, value)
            config_path = prepare_forge_project(directory, addon_url=addon, site=forge_site(host))
        else:
            config_path = prepare_project(directory, addon_url=addon, host_url=host.base_url)
        config = load_config(config_path)
        kept = "temporary: removed on exit; --dir DIR keeps one" if temporary else "kept"
        intro: tuple[str, ...] = (
            "connect-dev demo: everything runs on 127.0.0.1; nothing leaves this machine.",
            f"  emulated Jira:   {host.base_url}  (what it installed: "
            f"{host.origin}/_emulator/record)",
            f"  sample add-on:   {addon}",
            f"  descriptor:      {config.descriptor_path}",
            f"  project:         {directory}  ({kept})",
        )
        if forge:
            intro = (
                *intro,
                f"  manifest:        {directory / 'manifest.yml'}  (deployed with the Forge CLI "
                "EMULATION; Forge's state: "
                f"{host.origin}/_emulator/forge)",
            )
        if daemon.wants_dashboard(sys.stdout, log_format, no_tui):
            from ..tui import run_dashboard

            return await run_dashboard(config, notes=(*intro, f"{EDIT_NOTE} {STOP_DASHBOARD}."))
        bus = EventBus()
        daemon.attach_log(bus, sys.stdout, log_format, no_tui)
        # With JSON lines on stdout, where things are goes to stderr: stdout stays JSON.
        banner = sys.stderr if log_format == "json" else sys.stdout
        for line in (*intro, f"{EDIT_NOTE} {STOP_TEXT}."):
            print(line, file=banner, flush=True)
        return await daemon.run_until_signalled(
            config,
            bus,
            # The host and the add-on end with this process: nothing is left for `down`.
            forced="forced exit: the emulated host and the sample add-on end with it.",
            before_forced_exit=functools.partial(_remove, directory) if temporary else None,
        )
