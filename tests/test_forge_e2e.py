"""The Forge loop end to end (issue 10): real `connect-dev up --no-tui --log-format json`
subprocesses whose forge registrar runs the Forge CLI EMULATION (connect_devloop/forge/standin.py)
against an emulated Jira that plays Forge's servers too, and the sample add-on behind the proxy.

The CLI is a small wrapper written into each test's directory: it appends its argv as JSON to a
file, then execs the stand-in, so a test can hand every argv the registrar ran to the real
@forge/cli 13.3.0 option parser. Assertions are on the emulated Forge's own state (its
versions and installations), on what the site installed and called back, and on the events,
with exact texts. One test drives the supervisor in-process, with a tunnel whose URL changes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connect_devloop.config import load_config
from connect_devloop.demo.addon import ADDON, SampleAddon, create_app
from connect_devloop.events import EventBus
from connect_devloop.forge.convert import update_manifest
from connect_devloop.forge.manifest import PLACEHOLDER_APP_ID
from connect_devloop.forge.standin_text import LABEL
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.host.forge import forge_site
from connect_devloop.ledger import Ledger
from connect_devloop.supervisor import Supervisor

from .conftest import SAMPLE_DESCRIPTOR, EventLog, descriptor_text
from .e2e import CONNECT_DEV, Process, connect_dev_up, save
from .forge_cli.argv import forge_cli_parse
from .forge_cli.fixtures import forge_cli  # noqa: F401 - the real @forge/cli, once per session
from .keyrings import REPO_ROOT, subprocess_keyring_env
from .npm_peer import NPM_TIMEOUT_S
from .servers import serve
from .tunnels import free_port

APP_ID = "ari:cloud:ecosystem::app/5d0c2b1e-7c2a-4b8e-9f11-0e2d4c6a8b10"
# A UUID the emulated Forge does not know: "Your app could not be found".
UNKNOWN_APP_ID = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
EMAIL = "dev@example.com"
# Planted: it must appear in no output, event, file or process argument.
TOKEN = "ATATT3xFfGF0-planted-e2e-forge-token-Q7v"
KEY = str(SAMPLE_DESCRIPTOR["key"])
HOST_NAME = "cloud"
# The wrapper the registrar runs as its Forge CLI. FORGE_E2E_ECHO_TOKEN makes it print the
# token first, as a careless CLI might (what it prints must be masked); FORGE_E2E_FAULT_ON
# posts FORGE_E2E_FAULTS to the emulated host just before that command runs.
WRAPPER = textwrap.dedent(
    """\
    import json, os, sys, urllib.parse, urllib.request
    argv = sys.argv[1:]
    with open(os.environ["FORGE_E2E_ARGV_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(argv) + "\\n")
    if os.environ.get("FORGE_E2E_ECHO_TOKEN"):
        print("verbose: using token " + os.environ.get("FORGE_API_TOKEN", ""), flush=True)
    command = " ".join(argv[:2]) if argv[:2] == ["install", "list"] else argv[0]
    if os.environ.get("FORGE_E2E_FAULT_ON") == command:
        origin = urllib.parse.urlsplit(os.environ["CONNECT_DEV_FORGE_EMULATOR_URL"])
        request = urllib.request.Request(
            f"{origin.scheme}://{origin.netloc}/_emulator/faults",
            data=os.environ["FORGE_E2E_FAULTS"].encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(request, timeout=30).close()
    os.execv(sys.executable, [sys.executable, "-m", "connect_devloop.forge.standin", *argv])
    """
)


@dataclass
class World:
    """One test's world: an emulated Jira that plays Forge, the sample add-on, a project whose
    Forge CLI is the recording wrapper, and the environment `connect-dev up` runs in."""

    host: EmulatedHost
    addon: SampleAddon
    addon_url: str
    project: Path
    argv_log: Path
    env: dict[str, str]

    @property
    def site(self) -> str:
        return forge_site(self.host)

    @property
    def manifest(self) -> Path:
        return self.project / "manifest.yml"

    @property
    def descriptor(self) -> Path:
        return self.project / "atlassian-connect.json"

    @property
    def ledger(self) -> Path:
        return self.project / ".connect-dev" / "ledger.json"

    def write_manifest(self, app_id: str = APP_ID) -> None:
        """The manifest as `connect-dev forge convert` and `forge register` leave it."""
        text = update_manifest(None, json.loads(self.descriptor.read_text()), "jira").text
        self.manifest.write_text(text.replace(PLACEHOLDER_APP_ID, app_id), encoding="utf-8")

    def config(
        self,
        *,
        on_exit: str = "uninstall",
        port: int = 0,
        site: str | None = None,
        command: list[str] | None = None,
        forge: str = "",
    ) -> Path:
        wrapper = [sys.executable, str(self.project.parent / "forge_wrapper.py")]
        text = (
            'descriptor = "atlassian-connect.json"\n'
            f'[addon]\nurl = "{self.addon_url}"\n'
            f"[proxy]\nport = {port}\n"
            '[tunnel]\nprovider = "none"\n'
            f"[forge]\ncommand = {json.dumps(command or wrapper)}\n"
            f'on_exit = "{on_exit}"\n{forge}'
            f'[[hosts]]\nname = "{HOST_NAME}"\nregistrar = "forge"\n'
            f'site = "{site or self.site}"\nproduct = "jira"\n'
        )
        path = self.project / "connect-dev.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def argvs(self) -> list[list[str]]:
        if not self.argv_log.exists():
            return []
        return [json.loads(line) for line in self.argv_log.read_text().splitlines()]

    def deploys(self) -> list[dict[str, Any]]:
        """The emulated Forge's versions of the app in development, oldest first."""
        environment = self.host.forge.environment(APP_ID, "default")
        return [] if environment is None else environment.to_dict()["versions"]

    def deployed_page_names(self) -> list[str]:
        """The name of the page in each version's manifest, as deployed."""
        environment = self.host.forge.environment(APP_ID, "default")
        versions = [] if environment is None else environment.versions
        return [
            str(version.manifest["connectModules"]["jira:generalPages"][0]["name"]["value"])
            for version in versions
        ]

    def installation(self) -> dict[str, Any]:
        (installation,) = self.host.forge.installations.values()
        return installation.to_dict()

    def installed_descriptor(self) -> dict[str, Any]:
        return self.host.installations[KEY].descriptor

    async def fault(self, **switches: Any) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.host.origin}/_emulator/faults", json=switches) as response,
        ):
            assert response.status == 200, await response.text()

    async def forge_state(self) -> str:
        """GET /_emulator/forge and /_emulator/record: what the emulated site keeps."""
        async with aiohttp.ClientSession() as session:
            texts = []
            for path in ("/_emulator/forge", "/_emulator/record"):
                async with session.get(f"{self.host.origin}{path}") as response:
                    texts.append(await response.text())
        return "\n".join(texts)

    def files_text(self) -> str:
        """Every file under the test's directory (project, ledger, wrapper, argv log)."""
        return "\n".join(
            path.read_text(errors="replace")
            for path in sorted(self.project.parent.rglob("*"))
            if path.is_file()
        )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    # Descriptor-URL installs refused, as on Cloud since 2026: only the Forge path installs.
    async with run_host(descriptor_installs_refused=True) as host:
        app = create_app(host.keys_url)
        async with serve(app) as addon_url:
            project = tmp_path / "app"
            project.mkdir()
            (project / "atlassian-connect.json").write_text(descriptor_text(), encoding="utf-8")
            (tmp_path / "forge_wrapper.py").write_text(WRAPPER, encoding="utf-8")
            argv_log = tmp_path / "argv.jsonl"
            # No keychain at all (fail.Keyring), nothing of this machine's Forge login.
            env = subprocess_keyring_env(None)
            for name in ("FORGE_EMAIL", "FORGE_API_TOKEN", "CONNECT_DEV_FORGE_EMULATOR_URL"):
                env.pop(name, None)
            env.update(FORGE_EMAIL=EMAIL, FORGE_API_TOKEN=TOKEN, FORGE_E2E_ARGV_LOG=str(argv_log))
            world = World(host, app[ADDON], addon_url, project, argv_log, env)
            world.write_manifest()
            yield world


def steps(up: Process) -> list[tuple[str, str]]:
    return [(event["step"], event["state"]) for event in up.events("forge_step")]


async def until(up: Process, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``condition()`` holds, looking again at each line ``up`` prints."""
    async with asyncio.timeout(timeout):
        while not condition():
            if up.process.returncode is not None and up.reader and up.reader.done():
                raise AssertionError(f"exited: {up.lines[-20:]}")
            up.changed.clear()
            await up.changed.wait()


def done(*names: str) -> list[tuple[str, str]]:
    return [(name, state) for name in names for state in ("started", "done")]


def failure(error: str, hint: str) -> dict[str, Any]:
    """A `registration_failed` of the forge host, as its JSON line has it (without `ts`)."""
    return {
        "event": "registration_failed",
        "host": HOST_NAME,
        "error": error,
        "hint": hint,
        "registrar": "forge",
    }


def argv_forms(site: str) -> dict[str, list[str]]:
    """Every argv the forge registrar runs, for the host of ``site``."""
    install = ["install", "--site", site, "--product", "jira", "-e", "development"]
    return {
        "list": ["install", "list", "--json"],
        "deploy": ["deploy", "-e", "development", "--non-interactive"],
        "install": [*install, "--non-interactive"],
        "upgrade": [*install, "--non-interactive", "--upgrade"],
        "uninstall": ["uninstall", "-s", site, "-p", "jira", "-e", "development"],
    }


def hello(name: str) -> str:
    """The sample descriptor with its page named ``name``: a change Forge sees."""
    page = {"key": "hello", "name": {"value": name}, "url": "/hello"}
    return descriptor_text(modules={"generalPages": [page]})


def page_name(descriptor: dict[str, Any]) -> str:
    return str(descriptor["modules"]["generalPages"][0]["name"]["value"])


# --- the loop ----------------------------------------------------------------------------------


async def test_start_installs_a_save_deploys_again_and_the_exit_uninstalls(world: World) -> None:
    config = world.config(on_exit="uninstall")
    env = {**world.env, "FORGE_E2E_ECHO_TOKEN": "1"}
    async with connect_dev_up(config, env, args=["-v"]) as up:
        ready = await up.wait_event("ready")
        public_url = ready["public_url"]
        assert (ready["installed"], ready["hosts"], ready["waiting"]) == (1, 1, [])
        assert steps(up) == done("validate", "deploy", "install")
        [registering] = up.events("registering")
        assert (registering["host"], registering["reason"], registering["registrar"]) == (
            HOST_NAME,
            "startup",
            "forge",
        )
        [registered] = up.events("registered")
        assert (registered["key"], registered["registrar"], registered["unchanged"]) == (
            KEY,
            "forge",
            False,
        )
        # Forge's side: one version, installed on the site, its remote the public URL.
        assert [version["version"] for version in world.deploys()] == ["1.0.0"]
        installation = world.installation()
        assert (installation["site"], installation["product"], installation["version"]) == (
            world.site,
            "jira",
            "1.0.0",
        )
        assert world.installed_descriptor()["baseUrl"] == public_url
        assert world.addon.events == [f"installed {world.host.client_key}"]
        [lifecycle] = up.events("lifecycle")
        assert (lifecycle["lifecycle_event"], lifecycle["signature"], lifecycle["verified"]) == (
            "installed",
            "RS256",
            True,
        )

        save(world.descriptor, hello("Hello again"))
        await up.wait_event_count("registered", 2, timeout=15)
        assert [e["reason"] for e in up.events("registering")] == ["startup", "descriptor_changed"]
        assert steps(up) == done("validate", "deploy", "install") * 2
        # A minor version: it reaches the installation at once, the upgrade finds it there.
        assert [version["version"] for version in world.deploys()] == ["1.0.0", "1.1.0"]
        assert world.installation()["version"] == "1.1.0"
        assert page_name(world.installed_descriptor()) == "Hello again"
        assert "Hello again" in world.manifest.read_text()
        stderr = await up.stop()

    assert up.process.returncode == 0, stderr
    assert steps(up)[-2:] == done("uninstall")
    [deregistered] = up.events("deregistered")
    assert (deregistered["reason"], deregistered["was_installed"]) == ("shutdown", True)
    assert world.host.forge.installations == {}
    assert world.host.installations == {}
    assert world.addon.events[-1] == f"uninstalled {world.host.client_key}"
    assert Ledger(world.ledger).entries() == []
    forms = argv_forms(world.site)
    # After its own install the run knows the site has the app: a save goes straight to deploy.
    assert world.argvs() == [
        *(forms["list"], forms["deploy"], forms["install"]),
        *(forms["deploy"], forms["upgrade"]),
        forms["uninstall"],
    ]
    # The token reached the CLI's environment only: its echo is masked in the debug log.
    assert "forge: verbose: using token ********" in stderr
    everything = "\n".join(
        [*up.lines, stderr, world.files_text(), await world.forge_state(), str(world.argvs())]
    )
    assert TOKEN not in everything


async def test_a_burst_of_saves_during_a_slow_deploy_deploys_twice_and_the_last_wins(
    world: World,
) -> None:
    async with connect_dev_up(world.config(), world.env) as up:
        await up.wait_event("ready")
        await world.fault(forge_deploy_delay_ms=2000)
        save(world.descriptor, hello("save 1"))
        # The first save deploys at once; the next 19 come while that deploy runs.
        await until(up, lambda: steps(up).count(("deploy", "started")) == 2)
        for n in range(2, 21):
            await asyncio.sleep(0.05)
            save(world.descriptor, hello(f"save {n}"))
        await up.wait_event_count("registered", 3, timeout=15)
        await asyncio.sleep(0.5)  # anything still coming would have started by now
        assert len(up.events("registered")) == 3
        assert [e["reason"] for e in up.events("registering")] == [
            "startup",
            "descriptor_changed",
            "descriptor_changed",
        ]
        assert steps(up) == done("validate", "deploy", "install") * 3
        # Two deploys for the burst: the first save's, then the newest once.
        assert world.deployed_page_names() == ["Hello", "save 1", "save 20"]
        assert page_name(world.installed_descriptor()) == "save 20"
        assert up.events("registration_failed") == []


async def test_a_broken_save_is_never_deployed(world: World) -> None:
    async with connect_dev_up(world.config(), world.env) as up:
        await up.wait_event("ready")
        # Not JSON; then JSON that is no descriptor: the watcher stops both.
        save(world.descriptor, '{\n  "key": "test-addon",\n  "name": "broken",\n}\n')
        await up.wait_event("descriptor_invalid")
        save(world.descriptor, descriptor_text(key="bad key!"))
        await up.wait_event_count("descriptor_invalid", 2)
        # A valid descriptor whose manifest Cloud would refuse: stopped before `forge deploy`.
        dashboard = {"key": "board", "name": {"value": "Board"}, "url": "/board"}
        save(world.descriptor, descriptor_text(modules={"jiraDashboardItems": [dashboard]}))
        failed = await up.wait_event("registration_failed")
        path = world.manifest
        assert {k: v for k, v in failed.items() if k != "ts"} == {
            "event": "registration_failed",
            "host": HOST_NAME,
            "error": f'{path}:27:7: $.connectModules["jira:jiraDashboardItems"][0]'
            ".description: required field is missing (Cloud refuses the install; forge lint "
            "does not check module bodies) (and 1 more)",
            "hint": "Run `connect-dev validate` to see every problem; nothing was deployed.",
            "registrar": "forge",
        }
        assert steps(up)[-2:] == [("validate", "started"), ("validate", "failed")]
        assert [version["version"] for version in world.deploys()] == ["1.0.0"]
        assert page_name(world.installed_descriptor()) == "Hello"
        # The next good save deploys.
        save(world.descriptor, hello("fixed"))
        await up.wait_event_count("registered", 2, timeout=15)
        assert [version["version"] for version in world.deploys()] == ["1.0.0", "1.1.0"]
        assert page_name(world.installed_descriptor()) == "fixed"
        forms = argv_forms(world.site)
        assert world.argvs() == [
            *(forms["list"], forms["deploy"], forms["install"]),
            *(forms["deploy"], forms["upgrade"]),
        ]


async def test_a_save_that_changes_nothing_forge_sees_deploys_nothing(world: World) -> None:
    async with connect_dev_up(world.config(), world.env) as up:
        await up.wait_event("ready")
        # The name is not in the manifest (Forge keeps it at registration): same revision.
        save(world.descriptor, descriptor_text(name="Renamed add-on"))
        await up.wait_event_count("registered", 2)
        registered = up.events("registered")
        assert [(e["unchanged"], e["digest"] != registered[0]["digest"]) for e in registered] == [
            (False, False),
            (True, True),
        ]
        assert steps(up) == [*done("validate", "deploy", "install"), *done("validate")]
        assert [version["version"] for version in world.deploys()] == ["1.0.0"]


async def forge_by_hand(world: World, *args: str, **env: str) -> int:
    """The Forge CLI (the stand-in) run by hand in the project, as in another terminal."""
    environment = {
        **world.env,
        "CONNECT_DEV_FORGE_EMULATOR_URL": world.host.base_url,
        "FORGE_DISABLE_ANALYTICS": "1",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "connect_devloop.forge.standin", *args),
        cwd=world.project,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_an_app_uninstalled_by_hand_meanwhile_is_installed_afresh_on_the_next_save(
    world: World,
) -> None:
    async with connect_dev_up(world.config(), world.env) as up:
        await up.wait_event("ready")
        # `forge uninstall` by hand, in another terminal: this run still thinks it is there.
        uninstalled = await forge_by_hand(
            world,
            *("uninstall", "-s", world.site, "-p", "jira", "-e", "development"),
            CONNECT_DEV_BASE_URL="https://example.invalid",
        )
        assert uninstalled == 0
        assert world.host.forge.installations == {}

        save(world.descriptor, hello("after the uninstall"))
        await up.wait_event_count("registered", 2)
        assert steps(up)[6:] == [
            *done("validate", "deploy"),
            ("install", "started"),
            ("install", "failed"),  # --upgrade: "Could not find an installation"
            *done("install"),
        ]
        assert up.events("registration_failed") == []
        assert world.installation()["version"] == "1.1.0"
        assert page_name(world.installed_descriptor()) == "after the uninstall"
        forms = argv_forms(world.site)
        assert world.argvs()[3:] == [forms["deploy"], forms["upgrade"], forms["install"]]


async def test_a_new_connect_key_keeps_the_app_installed_under_it(world: World) -> None:
    async with connect_dev_up(world.config(), world.env) as up:
        public_url = (await up.wait_event("ready"))["public_url"]
        save(world.descriptor, descriptor_text(key="renamed-addon"))
        failed = await up.wait_event("registration_failed")
        # The real CLI asks before it deploys a new app.connect.key, even non-interactively.
        assert {k: v for k, v in failed.items() if k != "ts"} == failure(
            "forge deploy failed: Prompts can not be meaningfully rendered in non-TTY environments",
            "The app's Connect key changed since the last deploy, and the CLI asks for a "
            "confirmation only on a terminal: run `forge deploy` there once, or keep the key.",
        )
        assert [version["version"] for version in world.deploys()] == ["1.0.0"]
        # The developer deploys it once by hand, then saves again.
        deployed = await forge_by_hand(
            world,
            *("deploy", "-e", "development", "--no-verify"),
            CONNECT_DEV_BASE_URL=public_url,
            CONNECT_DEV_APP_KEY="renamed-addon",
        )
        assert deployed == 0
        save(world.descriptor, descriptor_text(key="renamed-addon", name="again"))
        await up.wait_event("registered", key="renamed-addon")
        await up.wait_event("deregistered", key=KEY)
        # The upgrade moved the one installation of the app to the new key: nothing to remove.
        assert world.installation()["connect_key"] == "renamed-addon"
        assert list(world.host.installations) == ["renamed-addon"]
        assert [e.key for e in Ledger(world.ledger).entries()] == ["renamed-addon"]
        [deregistered] = up.events("deregistered")
        assert (deregistered["key"], deregistered["reason"], deregistered["was_installed"]) == (
            KEY,
            "key_changed",
            False,
        )
        forms = argv_forms(world.site)
        assert forms["uninstall"] not in world.argvs()


# --- keep, a new tunnel URL, down ---------------------------------------------------------------


async def connect_dev(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """A `connect-dev` command run to its end without blocking this loop (the emulated site
    answers from it)."""
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def run_until_ready(world: World, config: Path) -> Process:
    """One `up` to `ready` and its exit: the process, its lines all read."""
    async with connect_dev_up(config, world.env) as up:
        await up.wait_event("ready")
        stderr = await up.stop()
    assert up.process.returncode == 0, stderr
    return up


async def test_a_kept_install_is_taken_over_unchanged_and_down_removes_it(world: World) -> None:
    port = free_port()
    kept_url = f"http://127.0.0.1:{port}"
    config = world.config(on_exit="keep", port=port)
    first = await run_until_ready(world, config)
    assert steps(first) == done("validate", "deploy", "install")
    [kept] = first.events("kept")
    assert (kept["host"], kept["key"]) == (HOST_NAME, KEY)
    assert first.events("deregistered") == []
    [entry] = Ledger(world.ledger).entries()
    assert (entry.registrar, entry.site, entry.confirmed) == ("forge", world.site, True)
    assert kept["revision"] == entry.revision
    assert world.installation()["version"] == "1.0.0"

    # Nothing changed: the next `up` takes the install over and deploys nothing.
    second = await run_until_ready(world, config)
    [registered] = second.events("registered")
    assert (registered["unchanged"], registered["registrar"]) == (True, "forge")
    assert steps(second) == done("validate")
    assert second.events("ready")[0]["installed"] == 1
    assert [e["key"] for e in second.events("kept")] == [KEY]
    assert [version["version"] for version in world.deploys()] == ["1.0.0"]
    forms = argv_forms(world.site)
    assert world.argvs() == [forms["list"], forms["deploy"], forms["install"]]

    code, out, err = await connect_dev("down", "--config", str(config), env=world.env)
    assert code == 0, err
    assert out.splitlines()[-1] == f"removed 1 install(s); 0 left in {world.ledger}"
    assert world.argvs()[-1] == forms["uninstall"]
    assert world.host.forge.installations == {}
    assert world.host.installations == {}
    # No `up` runs, so no proxy: the site's `uninstalled` callback finds nobody at the URL.
    callback = world.host.record.callbacks[-1]
    assert (callback.event, callback.url, callback.status) == (
        "uninstalled",
        f"{kept_url}/uninstalled",
        None,
    )
    assert Ledger(world.ledger).entries() == []


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_a_new_tunnel_url_deploys_a_major_version_taken_with_upgrade(
    world: World,
    forge_cli: Path,  # noqa: F811
) -> None:
    first_port, second_port = free_port(), free_port()
    await run_until_ready(world, world.config(on_exit="keep", port=first_port))
    assert world.installed_descriptor()["baseUrl"] == f"http://127.0.0.1:{first_port}"

    # The tunnel's URL changed (here: another proxy port behind the `none` tunnel).
    config = world.config(on_exit="keep", port=second_port)
    second = await run_until_ready(world, config)
    new_url = f"http://127.0.0.1:{second_port}"
    assert [e["reason"] for e in second.events("registering")] == ["startup"]
    assert steps(second) == done("validate", "deploy", "install")
    [registered] = second.events("registered")
    assert registered["unchanged"] is False
    [warning] = [e for e in second.events("warning") if "major version" in e["message"]]
    assert {k: v for k, v in warning.items() if k != "ts"} == {
        "event": "warning",
        "message": f"{HOST_NAME}: the remote's baseUrl is now {new_url}: Forge makes that a new "
        "major version, which the site takes through `forge install --upgrade` (done); on a "
        "production site an admin would have to approve it",
        "hint": "Use a stable public hostname (an ngrok domain: [tunnel.ngrok] domain, or your "
        "own ssh host) so that a restart does not make a new major version.",
    }
    assert [version["version"] for version in world.deploys()] == ["1.0.0", "2.0.0"]
    assert world.installation()["version"] == "2.0.0"
    assert world.installed_descriptor()["baseUrl"] == new_url
    # The site sent `installed` again, to the new URL.
    assert world.addon.events == [f"installed {world.host.client_key}"] * 2
    assert world.host.record.callbacks[-1].url == f"{new_url}/installed"

    code, _, err = await connect_dev("down", "--config", str(config), env=world.env)
    assert code == 0, err
    assert world.host.forge.installations == {}

    forms = argv_forms(world.site)
    assert world.argvs() == [
        *(forms["list"], forms["deploy"], forms["install"]),
        *(forms["list"], forms["deploy"], forms["upgrade"]),
        forms["uninstall"],
    ]
    # Every argv the registrar ran, as the real @forge/cli 13.3.0 parses it.
    verdicts = {" ".join(r.argv): r.error for r in forge_cli_parse(world.argvs())}
    assert verdicts == {" ".join(argv): None for argv in world.argvs()}


# --- failures, each with its hint ---------------------------------------------------------------


async def first_failure(
    world: World, config: Path, env: dict[str, str] | None = None
) -> tuple[Process, dict[str, Any]]:
    """Run `up` until its first install has failed and it is ready, then stop it (exit 0:
    nothing is left in the ledger). The failure, without its timestamp."""
    async with connect_dev_up(config, env or world.env) as up:
        failed = await up.wait_event("registration_failed")
        await up.wait_event("ready")
        stderr = await up.stop()
    assert up.process.returncode == 0, stderr
    assert up.events("registered") == []
    assert Ledger(world.ledger).entries() == []
    assert TOKEN not in "\n".join([*up.lines, stderr])
    return up, {k: v for k, v in failed.items() if k != "ts"}


async def test_a_forge_cli_that_is_not_there_says_how_to_install_it(world: World) -> None:
    missing = world.project.parent / "bin" / "forge"
    _, failed = await first_failure(world, world.config(command=[str(missing)]))
    assert failed == failure(
        f"the Forge CLI was not found: {missing}",
        "Install the Forge CLI: `npm install -g @forge/cli` (add `--ignore-scripts` where its "
        "downloads from GitHub are blocked), or point [forge] command in connect-dev.toml at it.",
    )
    assert world.deploys() == []


async def test_without_a_forge_login_it_says_connect_dev_login_forge(world: World) -> None:
    # Neither variable, and no keychain (fail.Keyring): the CLI is never run.
    env = {k: v for k, v in world.env.items() if k not in ("FORGE_EMAIL", "FORGE_API_TOKEN")}
    _, failed = await first_failure(world, world.config(), env)
    assert failed == failure(
        "not logged in to Forge: FORGE_EMAIL and FORGE_API_TOKEN are not set, and the keychain "
        "has no Forge login",
        "Run `connect-dev login --forge` (your Atlassian email and an API token from "
        "https://id.atlassian.com/manage-profile/security/api-tokens), or set both variables.",
    )
    assert world.argvs() == []
    assert world.deploys() == []


async def test_an_unregistered_app_says_forge_register_and_deploys_nothing(world: World) -> None:
    world.manifest.unlink()  # written again from the descriptor, with the placeholder app.id
    up, failed = await first_failure(world, world.config())
    assert failed == failure(
        f"{world.manifest}: app.id is the placeholder: the app is not registered on Forge yet",
        f"Run `forge register` in {world.project} (it writes app.id into manifest.yml), then "
        "save again.",
    )
    assert steps(up) == [("validate", "started"), ("validate", "failed")]
    assert PLACEHOLDER_APP_ID in world.manifest.read_text()
    assert world.argvs() == []
    assert world.host.forge.environments == {}


async def test_an_app_id_forge_does_not_know_says_forge_register(world: World) -> None:
    world.write_manifest(UNKNOWN_APP_ID)
    _, failed = await first_failure(world, world.config())
    assert failed == failure(
        "forge install list failed: Your app could not be found. Make sure the app details in "
        "the manifest.yml file are correct before trying again.",
        "app.id in manifest.yml names no app your account can see: run `forge register` in the "
        "manifest's directory (it writes a new app.id), or log in as the app's owner.",
    )
    assert world.argvs() == [argv_forms(world.site)["list"]]
    assert world.host.forge.environments == {}


async def test_a_site_that_is_not_there_says_check_site(world: World) -> None:
    # A site that is no loopback address: the emulated Forge is named in the environment.
    env = {**world.env, "CONNECT_DEV_FORGE_EMULATOR_URL": world.host.base_url}
    up, failed = await first_failure(world, world.config(site="nowhere.atlassian.net"), env)
    assert failed == failure(
        "forge install failed: The URL you entered doesn't belong to an Atlassian site: "
        "https://nowhere.atlassian.net/",
        "Check this host's `site` in connect-dev.toml: the site's host name, such as "
        "your-site.atlassian.net.",
    )
    assert [version["version"] for version in world.deploys()] == ["1.0.0"]
    assert world.host.forge.installations == {}
    # Nothing can be installed on a site that does not exist: the ledger entry goes on exit.
    [deregistered] = up.events("deregistered")
    assert (deregistered["reason"], deregistered["was_installed"]) == ("shutdown", False)
    forms = argv_forms("nowhere.atlassian.net")
    assert world.argvs() == [forms["list"], forms["deploy"], forms["install"], forms["uninstall"]]


async def test_a_revoked_token_says_make_a_new_one(world: World) -> None:
    await world.fault(forge_reject_credentials=True)
    _, failed = await first_failure(world, world.config())
    assert failed == failure(
        "forge install list failed: The API token on your machine is no longer valid. 1) Get a "
        "new API token: https://go.atlassian.com/forge-cli-api-token 2) Set your email and the "
        "token to FORGE_EMAIL and FORGE_API_TOKEN environment variables.",
        "Make a new API token at https://id.atlassian.com/manage-profile/security/api-tokens "
        "and store it with `connect-dev login --forge` (or in FORGE_API_TOKEN).",
    )
    assert world.host.forge.environments == {}


async def test_connect_modules_cloud_refuses_show_the_servers_text(world: World) -> None:
    message = (
        "CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION: Installation failed. The app descriptor "
        "is invalid: module hello: url is required."
    )
    # The emulated Forge refuses the next call: the wrapper asks for that as `forge install` runs.
    faults = {"forge_fail_next": 1, "forge_fail_message": message}
    env = {**world.env, "FORGE_E2E_FAULT_ON": "install", "FORGE_E2E_FAULTS": json.dumps(faults)}
    up, failed = await first_failure(world, world.config(), env)
    assert failed == failure(
        f"forge install failed: {message}",
        "Cloud refused the Connect modules: fix what the message names in atlassian-connect.json "
        "(connect-dev writes connectModules from it) and save.",
    )
    assert steps(up)[:6] == [
        *done("validate", "deploy"),
        ("install", "started"),
        ("install", "failed"),
    ]
    assert [version["version"] for version in world.deploys()] == ["1.0.0"]
    assert world.host.forge.installations == {}
    assert world.host.installations == {}


async def test_a_deploy_that_outlives_its_bound_is_stopped_and_says_so(world: World) -> None:
    await world.fault(forge_deploy_delay_ms=2000)
    env = {**world.env, "FORGE_E2E_ECHO_TOKEN": "1"}
    config = world.config(forge="deploy_timeout = 0.5\n")
    up, failed = await first_failure(world, config, env)
    assert failed == failure(
        "`forge deploy -e development --non-interactive` did not finish within 0.5 s; it was "
        "stopped",
        "Forge may be slow or unreachable; try again, or raise the [forge] deploy_timeout in "
        "connect-dev.toml. Its last lines:\n"
        + "\n".join(
            [
                "verbose: using token ********",  # the CLI's own line, the token masked
                LABEL,
                "Deploying your app to the development environment.",
                "Press Ctrl+C to cancel.",
                "Running forge lint...",
                "No issues found.",
                f"Deploying {KEY} to development...",
                "\u2139 Packaging app files",
                "\u2139 Uploading app",
            ]
        ),
    )
    assert steps(up)[:4] == [*done("validate"), ("deploy", "started"), ("deploy", "failed")]
    assert world.host.forge.installations == {}


# --- a tunnel whose URL changes while `up` runs (in-process) ------------------------------------


class MovingTunnel:
    """Opens at the proxy's own URL; after ``drop()`` the keeper reopens it at another name of
    the same proxy (``localhost`` for ``127.0.0.1``): a tunnel whose public URL changes while
    `up` runs, as a free ngrok agent's does when it restarts."""

    provider = "ssh"

    def __init__(self) -> None:
        self.opened = 0
        self._exit: str | None = None

    async def open(self, local_url: str) -> str:
        self.opened += 1
        self._exit = None
        return local_url if self.opened == 1 else local_url.replace("127.0.0.1", "localhost")

    async def close(self) -> None:
        pass

    def exited(self) -> str | None:
        return self._exit

    def drop(self) -> None:
        self._exit = "ssh exited with code 255"


async def test_a_tunnel_reopened_at_another_url_deploys_the_new_base_url(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FORGE_EMAIL", "FORGE_API_TOKEN", "FORGE_E2E_ARGV_LOG"):
        monkeypatch.setenv(name, world.env[name])
    path = world.config()
    # Health probes every 0.1 s: the drop is seen at once.
    text = path.read_text().replace(
        'provider = "none"\n', 'provider = "none"\nhealth_interval = 0.1\n'
    )
    path.write_text(text, encoding="utf-8")
    events = EventLog()
    bus = EventBus()
    bus.subscribe(events)
    tunnel = MovingTunnel()
    supervisor = Supervisor(load_config(path), bus, tunnel=tunnel, teardown_timeout=10)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    try:
        ready = await events.wait_event("ready", timeout=15)
        old_url = ready.public_url  # type: ignore[attr-defined]
        new_url = old_url.replace("127.0.0.1", "localhost")
        tunnel.drop()
        await events.wait_event("registered", count=2, timeout=15)
        assert [e.reason for e in events.of("registering")] == ["startup", "tunnel_changed"]  # type: ignore[attr-defined]
        [warning] = [e for e in events.of("warning") if "major version" in e.message]  # type: ignore[attr-defined]
        assert warning.message.startswith(  # type: ignore[attr-defined]
            f"{HOST_NAME}: the remote's baseUrl is now {new_url}: Forge makes that a new major "
        )
        assert [version["version"] for version in world.deploys()] == ["1.0.0", "2.0.0"]
        assert world.installation()["version"] == "2.0.0"
        assert world.installed_descriptor()["baseUrl"] == new_url
        assert world.host.record.callbacks[-1].url == f"{new_url}/installed"
        forms = argv_forms(world.site)
        assert world.argvs() == [
            *(forms["list"], forms["deploy"], forms["install"]),
            *(forms["deploy"], forms["upgrade"]),
        ]
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0
    # The `uninstalled` callback went to the new URL, through the proxy, to the add-on.
    assert world.host.record.callbacks[-1].url == f"{new_url}/uninstalled"
    assert world.addon.events[-1] == f"uninstalled {world.host.client_key}"
