"""The Forge path offline: the emulated Forge CLI (connect_devloop/forge/standin.py) run as a
real subprocess against the emulated site's Forge side (connect_devloop/host/forge.py) and the
sample add-on; and Cloud's refusal of descriptor-URL installs (item 7 of issue 10).

The real @forge/cli 13.3.0 (npm, installed once per session, its install scripts off) is the
peer: its option parser says which argvs it accepts, and for what it refuses offline (before a
login or the network) the stand-in must print what the real CLI prints.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connect_devloop.demo.addon import ADDON, SampleAddon, create_app
from connect_devloop.forge.standin_argv import ArgvError, parse_argv
from connect_devloop.forge.standin_text import LABEL, Text
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.host.install import DESCRIPTOR_INSTALLS_REFUSED, NOT_FROM_MARKETPLACE
from connect_devloop.secret import Secret
from connect_devloop.upm import UpmClient
from connect_devloop.upm.explain import DescriptorInstallsRefusedError

from .e2e import CONNECT_DEV
from .forge_cli.argv import (
    FORGE_CLI_VERSION,
    forge_cli_parse,
    forge_cli_parses,
    run_forge_cli,
)
from .forge_cli.fixtures import forge_cli  # noqa: F401 - the real @forge/cli, once per session
from .npm_peer import NPM_TIMEOUT_S
from .servers import serve

STANDIN = [sys.executable, "-m", "connect_devloop.forge.standin"]
APP_ID = "ari:cloud:ecosystem::app/3f2504e0-4f89-41d3-9a0c-0305e82c3301"
APP_KEY = "com.example.forge-standin"
EMAIL = "dev@example.com"
# Planted so that a test can prove it is never printed.
TOKEN = "ATATT3xFfGF0-planted-forge-token-Zq9"
SITE = "127.0.0.1:2990"  # what the real parser sees; the offline tests use their host's
MANIFEST = textwrap.dedent(
    f"""\
    app:
      id: {APP_ID}
      connect:
        key: ${{CONNECT_DEV_APP_KEY}}
        remote: connect
      runtime:
        name: nodejs22.x
    remotes:
      - key: connect
        baseUrl: ${{CONNECT_DEV_BASE_URL}}
    environment:
      variables:
        - CONNECT_DEV_BASE_URL
        - CONNECT_DEV_APP_KEY
    connectModules:
      jira:lifecycle:
        - key: lifecycle-events
          installed: /installed
          uninstalled: /uninstalled
      jira:generalPages:
        - key: hello
          location: system.top.navigation.bar
          name:
            value: Hello
          url: /hello
    permissions:
      scopes:
        - read:connect-jira
    """
)
ERROR_ENDING = ["", Text.RERUN_VERBOSE]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """stdout after the emulation's label, which comes first (on stderr for --json)."""
        lines = self.stdout.splitlines()
        if lines and lines[0] == LABEL:
            return lines[1:]
        assert self.stderr.startswith(LABEL + "\n"), (self.stdout, self.stderr)
        return lines


async def run_standin(*args: str, cwd: Path, env: dict[str, str]) -> Ran:
    # Exactly `env` (and PATH): FORGE_* variables of the machine running the tests stay out.
    environment = {"PATH": "/usr/bin:/bin", **env}
    process = await asyncio.create_subprocess_exec(
        *STANDIN,
        *args,
        cwd=cwd,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


@dataclass
class Offline:
    """One test's world: an emulated Jira that plays Forge too, the sample add-on, an app."""

    host: EmulatedHost
    addon: SampleAddon
    addon_url: str
    project: Path
    outputs: list[str]

    @property
    def site(self) -> str:
        return str(self.host.describe()["forge_site"])

    def env(self, **changes: str) -> dict[str, str]:
        """The stand-in's environment: logged in, analytics chosen, the manifest's variables
        set; a change to "" removes that variable."""
        env = {
            "CONNECT_DEV_FORGE_EMULATOR_URL": self.host.base_url,
            "FORGE_EMAIL": EMAIL,
            "FORGE_API_TOKEN": TOKEN,
            "FORGE_DISABLE_ANALYTICS": "1",
            "CONNECT_DEV_BASE_URL": self.addon_url,
            "CONNECT_DEV_APP_KEY": APP_KEY,
        }
        return {k: v for k, v in {**env, **changes}.items() if v}

    async def forge(self, *args: str, **env: str) -> Ran:
        ran = await run_standin(*args, cwd=self.project, env=self.env(**env))
        self.outputs += [ran.stdout, ran.stderr]
        return ran

    async def deploy(self, **env: str) -> Ran:
        return await self.forge("deploy", "-e", "development", "--non-interactive", **env)

    async def install(self, *more: str, **env: str) -> Ran:
        site = ("--site", self.site, "--product", "jira", "-e", "development")
        return await self.forge("install", *site, "--non-interactive", *more, **env)

    async def listing(self) -> list[dict[str, Any]]:
        ran = await self.forge("install", "list", "--json")
        assert ran.returncode == 0, ran.stdout
        assert ran.stderr.startswith(LABEL)
        rows = json.loads(ran.stdout)
        assert isinstance(rows, list)
        return rows

    async def fault(self, **switches: Any) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.host.origin}/_emulator/faults", json=switches) as response,
        ):
            assert response.status == 200, await response.text()


@pytest.fixture
async def offline(tmp_path: Path) -> AsyncIterator[Offline]:
    # Descriptor-URL installs refused, as on Cloud since 2026: the Forge path still installs.
    async with run_host(descriptor_installs_refused=True) as host:
        app = create_app(host.keys_url)
        async with serve(app) as url:
            project = tmp_path / "app"
            project.mkdir()
            (project / "manifest.yml").write_text(MANIFEST, encoding="utf-8")
            yield Offline(host, app[ADDON], url, project, [])


# --- the offline loop ------------------------------------------------------------------------


async def test_deploy_install_upgrade_list_and_uninstall_offline(offline: Offline) -> None:
    host, site = offline.host, offline.site
    deployed = await offline.deploy()
    assert deployed.returncode == 0, deployed.stdout
    assert deployed.lines == [
        "Deploying your app to the development environment.",
        "Press Ctrl+C to cancel.",
        "",
        "Running forge lint...",
        "No issues found.",
        "",
        f"Deploying {APP_KEY} to development...",
        "",
        "\u2139 Packaging app files",
        "\u2139 Uploading app",
        "",
        "\u2714 Deployed",
        "",
        f"Deployed {APP_KEY} to the development environment.",
    ]
    environment = host.forge.environment(APP_ID, "default")
    assert environment is not None
    assert environment.latest is not None
    manifest = environment.latest.manifest
    # ${VARIABLES} resolved from the deploy command's environment, as `forge deploy` does.
    assert manifest["remotes"] == [{"key": "connect", "baseUrl": offline.addon_url}]
    assert manifest["app"]["connect"]["key"] == APP_KEY
    assert manifest["environment"]["variables"] == ["CONNECT_DEV_BASE_URL", "CONNECT_DEV_APP_KEY"]

    installed = await offline.install()
    assert installed.returncode == 0, installed.stdout
    assert installed.lines == [
        "",
        "Installing your app onto an Atlassian site.",
        "Press Ctrl+C to cancel.",
        "",
        "Your app will be installed with the following scopes:",
        "- read:connect-jira",
        "",
        "Your app will exchange data with the following urls:",
        f"- {offline.addon_url}",
        "",
        "Installing your app in Jira on to development...",
        "\u2714 Install in Jira complete!",
        "",
        f"Your app in the development environment is now installed in Jira on {site}. You can "
        "install the app into other Atlassian apps by running the forge install command again.",
    ]
    # The sample add-on verified the RS256 signature with the host's key before it said 204.
    assert offline.addon.events == [f"installed {host.client_key}"]
    assert offline.addon.tenants[host.client_key].base_url == host.base_url
    (install,) = host.record.installs
    assert (install.key, install.signed, install.callback_status) == (APP_KEY, "RS256", 204)
    assert install.descriptor["baseUrl"] == offline.addon_url
    assert install.descriptor["scopes"] == ["READ"]
    assert install.descriptor["modules"]["generalPages"][0]["url"] == "/hello"
    assert install.plugin_uri.startswith(f"{host.origin}/_emulator/forge/descriptors/")
    (row,) = await offline.listing()
    assert row == {
        "id": row["id"],
        "environment": "development",
        "site": site,
        "product": "Jira",
        "majorVersion": "1 (Latest)",
        "appVersion": "1",
        "status": "Up-to-date",
    }

    # The tunnel moved: a new baseUrl is a major version the site takes only on --upgrade.
    moved = offline.addon_url.replace("127.0.0.1", "localhost")
    redeployed = await offline.deploy(CONNECT_DEV_BASE_URL=moved)
    assert redeployed.returncode == 0, redeployed.stdout
    assert redeployed.lines[-3:] == ["", *Text.OUTDATED_INSTALLATIONS.splitlines()]
    (row,) = await offline.listing()
    assert (row["majorVersion"], row["status"]) == ("1 (Out-of-date)", "Outdated app")
    again = await offline.install(CONNECT_DEV_BASE_URL=moved)
    assert again.returncode == 1
    refused = [
        "Installing your app in Jira on to development...",
        "",
        "Error: Installation error: App is already installed.",
        "If you're trying to upgrade your app, use the forge install --upgrade command.",
        "",
        f"Your app in development was not installed on any Atlassian apps on https://{site}/.",
        "",
        "Error: Failed to install into the following Atlassian apps: Jira. Run forge install "
        "again to reattempt this installation.",
        *ERROR_ENDING,
    ]
    assert again.lines[-len(refused) :] == refused
    assert len(host.record.installs) == 1

    upgraded = await offline.install("--upgrade", CONNECT_DEV_BASE_URL=moved)
    assert upgraded.returncode == 0, upgraded.stdout
    assert upgraded.lines == [
        "",
        "Upgrading your app on the Atlassian site.",
        "",
        "Your app will be upgraded and additionally exchange data with the following urls:",
        f"- {moved}",
        "",
        "Upgrading your app in development...",
        "\u2714 Upgrade complete!",
        "",
        f"Your app in the development environment is now the latest in Jira on {site}.",
    ]
    latest = host.record.callbacks[-1]
    assert (latest.event, latest.url, latest.signed, latest.status) == (
        "installed",
        f"{moved}/installed",
        "RS256",
        204,
    )
    assert offline.addon.events == [f"installed {host.client_key}"] * 2
    (row,) = await offline.listing()
    assert (row["majorVersion"], row["appVersion"], row["status"]) == (
        "2 (Latest)",
        "2",
        "Up-to-date",
    )
    unchanged = await offline.install("--upgrade", CONNECT_DEV_BASE_URL=moved)
    assert unchanged.lines[-3:] == [
        "\u2714 Site is already at the latest version",
        "",
        f"Your app in the development environment is at the latest in Jira on {site}.",
    ]

    removed = await offline.forge(
        "uninstall", "-s", site, "-p", "jira", "-e", "development", CONNECT_DEV_BASE_URL=moved
    )
    assert removed.returncode == 0, removed.stdout
    assert removed.lines == [
        "Uninstalling...",
        "Press Ctrl+C to cancel.",
        "",
        "Uninstalling...",
        "\u2714 Uninstalled",
        "",
        "",
        f"\u2714 Uninstalled from the development environment in Jira on {site}.",
    ]
    assert offline.addon.events[-1] == f"uninstalled {host.client_key}"
    assert offline.addon.tenants == {}
    assert host.installations == {}
    assert host.record.uninstalls[-1].signed == "RS256"
    assert await offline.listing() == []
    everything = "".join(offline.outputs)
    assert TOKEN not in everything
    assert EMAIL not in everything


async def test_a_minor_deploy_reaches_the_site_without_an_upgrade(offline: Offline) -> None:
    assert (await offline.deploy()).returncode == 0
    assert (await offline.install()).returncode == 0
    offline.project.joinpath("manifest.yml").write_text(
        MANIFEST.replace("value: Hello", "value: Hello again"), encoding="utf-8"
    )
    assert (await offline.deploy()).returncode == 0
    descriptor = offline.host.installations[APP_KEY].descriptor
    assert descriptor["modules"]["generalPages"][0]["name"] == {"value": "Hello again"}
    (row,) = await offline.listing()
    assert (row["majorVersion"], row["status"]) == ("1 (Latest)", "Up-to-date")
    assert len(offline.host.record.installs) == 1  # no second installed callback


async def test_a_slow_deploy_takes_the_time_set_on_the_host(offline: Offline) -> None:
    await offline.fault(forge_deploy_delay_ms=1500)
    started = time.monotonic()
    assert (await offline.deploy()).returncode == 0
    assert time.monotonic() - started >= 1.5
    assert offline.host.describe()["forge_deploy_delay_ms"] == 1500


# --- refusals --------------------------------------------------------------------------------


async def test_without_a_login_nothing_runs(offline: Offline) -> None:
    for env in (
        {"FORGE_EMAIL": "", "FORGE_API_TOKEN": ""},
        {"FORGE_EMAIL": ""},
        {"FORGE_API_TOKEN": ""},
    ):
        ran = await offline.deploy(**env)
        assert ran.returncode == 1
        assert ran.lines == ["", f"Error: {Text.NOT_LOGGED_IN}", *ERROR_ENDING]
    assert offline.host.forge.calls == []
    assert TOKEN not in "".join(offline.outputs)


async def test_revoked_credentials_are_refused(offline: Offline) -> None:
    await offline.fault(forge_reject_credentials=True)
    ran = await offline.deploy()
    assert ran.returncode == 1
    assert ran.lines == ["", *f"Error: {Text.INVALID_TOKEN_IN_ENV}".splitlines(), *ERROR_ENDING]
    assert TOKEN not in ran.stdout + ran.stderr


async def test_an_analytics_choice_is_needed(offline: Offline) -> None:
    ran = await offline.deploy(FORGE_DISABLE_ANALYTICS="")
    assert (ran.returncode, ran.lines) == (
        1,
        ["", f"Error: {Text.MISSING_ANALYTICS}", *ERROR_ENDING],
    )
    # Without --non-interactive the real CLI asks, and cannot without a terminal.
    asked = await offline.forge("install", "list", FORGE_DISABLE_ANALYTICS="")
    assert asked.returncode == 1
    assert asked.lines == [
        Text.ANALYTICS_PROMPT,
        "",
        "",
        f"Error: {Text.PROMPT_WITHOUT_TTY}",
        *ERROR_ENDING,
    ]


async def test_non_interactive_install_needs_site_product_and_environment(offline: Offline) -> None:
    ran = await offline.forge("install", "--non-interactive", "-e", "development")
    assert ran.returncode == 1
    message = "install --non-interactive requires --site --product --environment"
    assert ran.lines == ["", f"Error: {message}", *ERROR_ENDING]


async def test_install_warns_of_an_undeployed_manifest_and_asks_without_confirm_scopes(
    offline: Offline,
) -> None:
    assert (await offline.deploy()).returncode == 0
    offline.project.joinpath("manifest.yml").write_text(
        MANIFEST.replace(
            "- read:connect-jira", "- read:connect-jira\n        - write:connect-jira"
        ),
        encoding="utf-8",
    )
    site = ("--site", offline.site, "--product", "jira", "-e", "development")
    asked = await offline.forge("install", *site)
    assert asked.returncode == 1
    mismatch = Text.permissions_mismatch("default", upgrade=False).rstrip("\n")
    assert asked.lines[-6:] == [
        mismatch,
        "",
        "",
        f"Error: {Text.PROMPT_WITHOUT_TTY}",
        *ERROR_ENDING,
    ]
    confirmed = await offline.forge("install", *site, "--confirm-scopes")
    assert confirmed.returncode == 0, confirmed.stdout
    assert mismatch in confirmed.lines
    # What is installed is what was deployed, not the edited manifest.
    assert offline.host.installations[APP_KEY].descriptor["scopes"] == ["READ"]


async def test_an_unregistered_app_is_refused(offline: Offline) -> None:
    manifest = offline.project / "manifest.yml"
    manifest.write_text(MANIFEST.replace(APP_ID, "ari:cloud:ecosystem::app/to-be-generated"))
    ran = await offline.deploy()
    assert (ran.returncode, ran.lines) == (1, ["", f"Error: {Text.APP_NOT_FOUND}", *ERROR_ENDING])
    manifest.write_text(MANIFEST.replace(f"  id: {APP_ID}\n", ""))
    ran = await offline.deploy()
    assert ran.returncode == 1
    assert ran.lines == [
        "",
        str(manifest),
        "1:0     error    app must have required property 'id'  valid-document-required",
        "",
        "",
        f"Error: {Text.VALIDATION_FAILED}",
        *ERROR_ENDING,
    ]
    assert offline.host.forge.environments == {}


async def test_a_variable_without_a_value_stops_every_command(offline: Offline) -> None:
    for args in (("deploy", "-e", "development"), ("install", "list")):
        ran = await offline.forge(*args, CONNECT_DEV_BASE_URL="")
        assert ran.returncode == 1
        assert ran.lines[:3] == [
            "",
            str(offline.project / "manifest.yml"),
            "0:0     error    manifest.yml failed to parse content - could not find environment "
            "variable 'CONNECT_DEV_BASE_URL'  valid-yaml-required",
        ]


async def test_an_unknown_site_or_product_is_refused(offline: Offline) -> None:
    assert (await offline.deploy()).returncode == 0
    ran = await offline.forge(
        "install",
        "--site",
        "nowhere.atlassian.net",
        "--product",
        "jira",
        "-e",
        "development",
        "--non-interactive",
    )
    assert ran.returncode == 1
    assert ran.lines[-10:-5] == [
        "Error: The URL you entered doesn't belong to an Atlassian site: ",
        "https://nowhere.atlassian.net/ ",
        "",
        "Run the command using a different URL.",
        "",
    ]
    ran = await offline.forge(
        "install",
        "--site",
        offline.site,
        "--product",
        "confluence",
        "-e",
        "development",
        "--non-interactive",
    )
    assert ran.returncode == 1
    assert (
        f"Error: Atlassian app is not activated on https://{offline.site}/. Enable Confluence in "
        "your suite or contact your administrator for assistance."
    ) in ran.lines
    assert offline.host.installations == {}


async def test_cloud_refuses_invalid_connect_modules_at_install(offline: Offline) -> None:
    offline.project.joinpath("manifest.yml").write_text(
        MANIFEST.replace("      url: /hello\n", ""), encoding="utf-8"
    )
    assert (await offline.deploy()).returncode == 0  # module bodies are not checked offline
    ran = await offline.install()
    assert ran.returncode == 1
    (refusal,) = [
        line for line in ran.lines if "CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION" in line
    ]
    assert refusal.startswith(
        "Error: One or more connectModules are defined incorrectly in your manifest.yml. Check "
        "the module definitions and deploy before trying again. "
        '(CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION: connectModules["jira:generalPages"][0] '
        "('hello'): url is required) For more help on this issue"
    )
    assert offline.addon.events == []
    assert offline.host.installations == {}


async def test_install_before_any_deploy_says_so_and_exits_0(offline: Offline) -> None:
    ran = await offline.install()
    assert ran.returncode == 0  # as the real CLI: it prints an error and ends normally
    assert ran.lines[-1] == f"Error: {Text.no_deployment('default')}"


async def test_a_bare_major_version_is_refused_as_the_real_cli_refuses_it(offline: Offline) -> None:
    ran = await offline.forge("deploy", "-e", "development", "--non-interactive", "--major-version")
    assert (ran.returncode, ran.lines) == (
        1,
        ["", f"Error: {Text.INVALID_MAJOR_VERSION}", *ERROR_ENDING],
    )


async def test_a_failing_forge_server_is_reported(offline: Offline) -> None:
    await offline.fault(forge_fail_next=1, forge_fail_message="Forge is having a bad day")
    ran = await offline.deploy()
    assert ran.returncode == 1
    assert "Error: Forge is having a bad day" in ran.lines
    assert offline.host.forge.failures_left == 0


async def test_without_the_emulated_host_the_stand_in_says_what_it_needs(offline: Offline) -> None:
    ran = await offline.deploy(CONNECT_DEV_FORGE_EMULATOR_URL="")
    assert ran.returncode == 1
    assert "CONNECT_DEV_FORGE_EMULATOR_URL is not set" in ran.lines[1]


async def test_help_and_version_are_labelled_as_an_emulation(tmp_path: Path) -> None:
    helped = await run_standin("--help", cwd=tmp_path, env={})
    assert helped.returncode == 0
    assert helped.stdout.startswith(LABEL + "\n")
    assert "EMULATION" in LABEL
    version = await run_standin("--version", cwd=tmp_path, env={})
    assert (version.returncode, version.stdout, version.stderr) == (
        0,
        f"{FORGE_CLI_VERSION}\n",
        f"{LABEL}\n",
    )


# --- Cloud's refusal of descriptor-URL installs (issue 10, item 7) -----------------------------


async def test_a_refused_descriptor_install_points_to_the_forge_registrar() -> None:
    async def descriptor(request: web.Request) -> web.Response:
        base_url = f"{request.scheme}://{request.host}"
        return web.json_response(
            {
                "key": APP_KEY,
                "name": "Refused",
                "baseUrl": base_url,
                "authentication": {"type": "jwt"},
                "apiMigrations": {"signed-install": True},
                "lifecycle": {"installed": "/installed"},
                "modules": {},
            }
        )

    app = web.Application()
    app.router.add_get("/atlassian-connect.json", descriptor)
    async with run_host() as host, serve(app) as url, aiohttp.ClientSession() as session:
        async with session.post(
            f"{host.origin}/_emulator/faults", json={"descriptor_installs_refused": True}
        ) as response:
            assert (await response.json())["descriptor_installs_refused"] is True
        client = UpmClient(session, host.base_url, "admin", Secret("admin"))
        with pytest.raises(DescriptorInstallsRefusedError) as caught:
            await client.install(f"{url}/atlassian-connect.json")
    error = caught.value
    assert error.message.startswith(
        f"{host.base_url} no longer installs private apps from a descriptor URL ("
    )
    assert DESCRIPTOR_INSTALLS_REFUSED in error.message
    assert error.sub_code == NOT_FROM_MARKETPLACE
    assert error.hint is not None
    assert 'registrar = "forge"' in error.hint
    assert "connect-dev forge convert" in error.hint
    assert "Enable development mode" not in error.hint
    assert host.record.failed_installs[-1].error_message == DESCRIPTOR_INSTALLS_REFUSED
    assert host.installations == {}


async def test_host_command_switches_for_the_forge_path() -> None:
    process = await asyncio.create_subprocess_exec(
        *CONNECT_DEV,
        "host",
        "--port",
        "0",
        "--descriptor-installs",
        "refused",
        "--forge-deploy-delay",
        "250",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = first.split(" at ", 1)[1].strip()
        origin = base_url.removesuffix("/jira")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{origin}/_emulator") as response,
        ):
            info = await response.json()
        assert (info["descriptor_installs_refused"], info["forge_deploy_delay_ms"]) == (True, 250)
        assert info["forge_site"] == origin.removeprefix("http://")
        lines = [(await process.stdout.readline()).decode() for _ in range(5)]
        assert f"  forge:      CONNECT_DEV_FORGE_EMULATOR_URL={base_url}\n" in lines
    finally:
        process.terminate()
        await asyncio.wait_for(process.communicate(), 20)


# --- the real @forge/cli as the peer -----------------------------------------------------------


# The argvs the stand-in documents (its --help) and the forge registrar is to run.
DOCUMENTED = [
    ["deploy", "-e", "development", "--non-interactive"],
    ["deploy", "-e", "development", "--non-interactive", "--no-verify"],
    ["deploy", "-e", "development", "--non-interactive", "-f", "--major-version", "2"],
    ["install", "--site", SITE, "--product", "jira", "-e", "development", "--non-interactive"],
    [
        "install",
        "--site",
        SITE,
        "--product",
        "confluence",
        "-e",
        "development",
        "--non-interactive",
        "--upgrade",
        "--confirm-scopes",
    ],
    ["install", "list", "--json"],
    ["uninstall", "-s", SITE, "-p", "jira", "-e", "development"],
]
# Accepted and refused alike, for the differential test.
ARGVS = [
    *DOCUMENTED,
    ["deploy", "--environment=staging", "-f"],
    ["deploy", "-edevelopment", "-v3"],
    ["deploy", "-fv", "4", "-e", "development"],
    ["deploy", "-e", "development", "--major-version"],
    ["deploy", "-e", "development", "-v", "1"],
    ["deploy", "-e", "Bad.Env"],
    ["deploy", "--tag"],
    ["deploy", "--approve", "a", "b", "-e", "development"],
    ["deploy", "--non-interactive", "--json"],
    ["deploy", "-e", "development", "--", "extra"],
    ["deploy", "extra"],
    ["deploi"],
    ["install", "--sitee", "x"],
    ["install", "--site", SITE, "--product", "jira", "-e", "development", "--upgrade", "all"],
    ["install", "--site", SITE, "--product", "jira", "-e", "development", "--upgrade", "bogus"],
    ["install", "--non-interactive", "-e", "development"],
    ["install", "--site", "--product", "jira", "-e", "development", "--non-interactive"],
    ["install", "--site", SITE, "--product", "jirra", "-e", "development"],
    ["install", "--site", SITE, "-p", "jira", "list", "--json"],
    ["install", "list", "--json", "--site", "x"],
    ["install", "list", "--jsn"],
    ["install", "x.atlassian.net"],
    ["uninstall", "--site", SITE, "--product", "jira", "--environment", "development"],
    ["uninstall", "-s", SITE, "-p", "jira", "-e", "development", "--non-interactive"],
    ["uninstall", "-s", SITE, "foo"],
    ["--verbose", "deploy", "-e", "development"],
    ["deploy", "--help"],
    ["--version"],
    [],
]


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
def test_the_real_parser_refuses_a_misspelt_option(forge_cli: Path) -> None:  # noqa: F811
    assert forge_cli_parses(["install", "--sitee", "x"]) == (
        "unknown option '--sitee'\n(Did you mean --site?)"
    )


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
def test_the_real_parser_accepts_the_documented_argvs(forge_cli: Path) -> None:  # noqa: F811
    assert {" ".join(argv): forge_cli_parses(argv) for argv in DOCUMENTED} == {
        " ".join(argv): None for argv in DOCUMENTED
    }


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
def test_the_stand_in_parses_every_argv_as_the_real_cli_does(forge_cli: Path) -> None:  # noqa: F811
    def verdict(argv: list[str]) -> tuple[Any, ...]:
        try:
            parsed = parse_argv(argv)
        except ArgvError as error:
            return ("refused", error.message)
        if parsed.help or parsed.version:
            return ("accepted", "help" if parsed.help else "version")
        return ("accepted", parsed.command, parsed.options)

    mismatches = []
    for real in forge_cli_parse(ARGVS):
        # Refusals of the argv-check stage come later, in the stand-in as in the real CLI.
        if real.stage == "parser":
            expected: tuple[Any, ...] = ("refused", real.error)
        elif real.command in ("help", "version"):
            expected = ("accepted", real.command)
        else:
            expected = ("accepted", real.command, real.options)
        if verdict(real.argv) != expected:
            mismatches.append((real.argv, verdict(real.argv), expected))
    assert mismatches == []


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_the_stand_in_refuses_what_the_real_cli_refuses_on_the_argv(
    forge_cli: Path,  # noqa: F811
    offline: Offline,
) -> None:
    checked = 0
    for real in forge_cli_parse(ARGVS):
        if real.stage != "argv-check":
            continue
        args = [offline.site if arg == SITE else arg for arg in real.argv]
        ran = await offline.forge(*args)
        assert ran.returncode == 1, (real.argv, ran.stdout)
        assert f"Error: {real.error}" in "\n".join(ran.lines), (real.argv, ran.stdout)
        checked += 1
    assert checked >= 6


def _without_node_warning(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    # The real CLI warns on Node 20 (it wants 22 or 24): two lines and a blank one.
    if lines and lines[0].startswith("Warning: Forge CLI supports Node.js"):
        lines = lines[3:]
    return lines


OFFLINE_REFUSALS: list[tuple[str, list[str], dict[str, str], str | None]] = [
    ("no login", ["deploy", "-e", "development", "--non-interactive"], {}, MANIFEST),
    ("e-mail only", ["deploy", "-e", "development"], {"FORGE_EMAIL": EMAIL}, MANIFEST),
    ("token only", ["install", "list", "--json"], {"FORGE_API_TOKEN": TOKEN}, MANIFEST),
    (
        "no analytics choice",
        ["deploy", "-e", "development", "--non-interactive"],
        {"FORGE_DISABLE_ANALYTICS": ""},
        MANIFEST,
    ),
    (
        "analytics prompt",
        ["uninstall", "-s", SITE, "-p", "jira", "-e", "development"],
        {"FORGE_DISABLE_ANALYTICS": ""},
        MANIFEST,
    ),
    ("install flags", ["install", "--non-interactive", "-e", "development"], {}, MANIFEST),
    ("no manifest", ["deploy", "-e", "development", "--non-interactive"], {}, None),
    ("no app id", ["deploy", "-e", "development"], {}, MANIFEST.replace(f"  id: {APP_ID}\n", "")),
    ("no value", ["install", "list"], {"CONNECT_DEV_BASE_URL": ""}, MANIFEST),
    ("bad environment", ["deploy", "-e", "Bad.Env", "--non-interactive"], {}, MANIFEST),
    (
        "site without value",
        ["install", "--site", "--product", "jira", "-e", "development", "--non-interactive"],
        {},
        MANIFEST,
    ),
    ("bad product", ["install", "-s", SITE, "-p", "jirra", "-e", "development"], {}, MANIFEST),
    ("misspelt option", ["install", "--sitee", "x"], {}, MANIFEST),
    (
        "uninstall option",
        ["uninstall", "-s", SITE, "-p", "jira", "--non-interactive"],
        {},
        MANIFEST,
    ),
]


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
@pytest.mark.parametrize(
    ("argv", "env", "manifest"),
    [pytest.param(argv, env, manifest, id=name) for name, argv, env, manifest in OFFLINE_REFUSALS],
)
async def test_the_stand_in_prints_what_the_real_cli_prints_when_it_refuses(
    forge_cli: Path,  # noqa: F811
    tmp_path: Path,
    argv: list[str],
    env: dict[str, str],
    manifest: str | None,
) -> None:
    if manifest is not None:
        (tmp_path / "manifest.yml").write_text(manifest, encoding="utf-8")
    environment = {
        "FORGE_DISABLE_ANALYTICS": "1",
        "CONNECT_DEV_BASE_URL": "https://tunnel.example.com",
        "CONNECT_DEV_APP_KEY": APP_KEY,
        **env,
    }
    environment = {k: v for k, v in environment.items() if v}
    real = await asyncio.to_thread(run_forge_cli, argv, cwd=tmp_path, env=environment)
    ours = await run_standin(*argv, cwd=tmp_path, env=environment)
    assert (ours.returncode, ours.lines) == (real.returncode, _without_node_warning(real.stdout))
    assert ours.returncode == 1
