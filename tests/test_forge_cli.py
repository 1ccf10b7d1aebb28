"""Running the Forge CLI (forge/cli.py): real subprocesses of small scripts that print as the
Forge CLI prints, its failures explained, secrets masked, the time bound enforced."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connect_devloop.errors import ForgeError
from connect_devloop.forge.cli import INSTALL_CLI_HINT, CliRun, ForgeCli, error_line, explain
from connect_devloop.registrars.forge import _json_rows

TOKEN = "planted-forge-token-8c1d"


def script(tmp_path: Path, body: str) -> ForgeCli:
    """A stand-in executable: ``body`` runs with ``argv`` and ``env`` (os.environ) defined."""
    path = tmp_path / "fake_forge.py"
    path.write_text("import os, sys, time\nargv = sys.argv[1:]\nenv = os.environ\n" + body)
    return ForgeCli([sys.executable, str(path)], tmp_path, secrets=lambda: [TOKEN])


async def test_output_and_exit_code_are_kept_and_the_environment_carries_the_login(
    tmp_path: Path,
) -> None:
    cli = script(
        tmp_path,
        textwrap.dedent(
            """
            print("Deploying your app to the development environment.")
            print("token is " + env["FORGE_API_TOKEN"], flush=True)
            print("analytics " + env["FORGE_DISABLE_ANALYTICS"])
            print("args " + " ".join(argv))
            """
        ),
    )
    run = await cli.run(
        ["deploy", "-e", "development", "--non-interactive"],
        {"FORGE_API_TOKEN": TOKEN},
        time_limit=30,
    )
    assert run.code == 0
    assert run.lines == (
        "Deploying your app to the development environment.",
        "token is ********",
        "analytics 1",
        "args deploy -e development --non-interactive",
    )
    assert TOKEN not in run.output


async def test_a_failure_is_the_clis_error_line_with_a_hint(tmp_path: Path) -> None:
    cli = script(
        tmp_path,
        textwrap.dedent(
            """
            print()
            print("Error: Not logged in. If a local keychain is available, run forge login,")
            print("otherwise set environment variables before trying again.")
            print()
            print("Rerunning the command with --verbose may give more details.")
            sys.exit(1)
            """
        ),
    )
    run = await cli.run(["deploy", "-e", "development", "--non-interactive"], {}, time_limit=30)
    assert run.code == 1
    error = explain("deploy", run, cli)
    assert error.message == (
        "forge deploy failed: Not logged in. If a local keychain is available, run forge "
        "login, otherwise set environment variables before trying again."
    )
    assert error.hint is not None
    assert error.hint.startswith("Run `connect-dev login --forge`")


@pytest.mark.parametrize(
    ("said", "hint_start"),
    [
        ("Your app could not be found. Make sure the app details", "app.id in manifest.yml"),
        (
            "The URL you entered doesn't belong to an Atlassian site: ",
            "Check this host's `site`",
        ),
        ("CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION: webItem needs a url", "Cloud refused"),
        ("The API token on your machine is no longer valid.", "Make a new API token"),
        ("Unsupported Node.js version. The CLI requires Node.js 22", "Install a Node.js"),
        ("something nobody has seen before", "Run `forge install --site x"),
    ],
)
def test_each_known_failure_has_its_hint(said: str, hint_start: str, tmp_path: Path) -> None:
    cli = ForgeCli(["forge"], tmp_path)
    run = CliRun(("install", "--site", "x"), 1, ("", f"Error: {said}"), 10)
    error = explain("install", run, cli)
    assert error.message == f"forge install failed: {said.strip()}"
    assert error.hint is not None
    assert error.hint.startswith(hint_start), error.hint


def test_without_an_error_line_the_last_line_is_the_message() -> None:
    assert error_line(CliRun(("deploy",), 1, ("one", "two"), 1)) == "two"
    assert error_line(CliRun(("deploy",), 1, (), 1)) == "exit code 1, no output"


async def test_a_missing_cli_says_how_to_install_it(tmp_path: Path) -> None:
    cli = ForgeCli(["forge-that-is-not-installed-here"], tmp_path)
    with pytest.raises(ForgeError) as raised:
        await cli.run(["deploy"], {}, time_limit=5)
    assert raised.value.message == ("the Forge CLI was not found: forge-that-is-not-installed-here")
    assert raised.value.hint == INSTALL_CLI_HINT


async def test_a_cli_over_its_time_bound_is_stopped_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    cli = script(
        tmp_path,
        textwrap.dedent(
            f"""
            import subprocess
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            print("Deploying...", flush=True)
            time.sleep(60)
            """
        ),
    )
    started = time.monotonic()
    with pytest.raises(ForgeError) as raised:
        await cli.run(["deploy", "-e", "development"], {}, time_limit=1.0)
    assert time.monotonic() - started < 15
    assert raised.value.message == (
        "`forge deploy -e development` did not finish within 1 s; it was stopped"
    )
    assert raised.value.hint is not None
    assert raised.value.hint.endswith("Its last lines:\nDeploying...")
    child = int(pid_file.read_text())
    for _ in range(50):  # the whole process group went: nothing the CLI started lingers
        if not Path(f"/proc/{child}").exists() or "Z" in _state(child):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"the CLI's child {child} is still running")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "gone"


def test_install_list_json_is_found_after_other_lines() -> None:
    rows = (
        "[connect-devloop] Forge CLI EMULATION: a stand-in",
        "Warning: Forge CLI supports Node.js 22.x, 24.x.",
        "[",
        "  {",
        '    "id": "i-1",',
        '    "environment": "development",',
        '    "site": "example.atlassian.net",',
        '    "product": "Jira"',
        "  }",
        "]",
    )
    assert _json_rows(CliRun(("install", "list", "--json"), 0, rows, 1)) == [
        {
            "id": "i-1",
            "environment": "development",
            "site": "example.atlassian.net",
            "product": "Jira",
        }
    ]
    assert (
        _json_rows(CliRun(("install", "list"), 0, ("The app is not installed anywhere.",), 1)) == []
    )
