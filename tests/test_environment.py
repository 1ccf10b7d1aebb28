"""No traceback, ever, for the environment or damaged state: the real `connect-dev` meets a
read-only or misplaced `.connect-dev`, an unwritable project, damaged ledger and tenant files,
an unusable lock; each gives one line naming the file and what to do, and nothing is lost.

Tests run as root (CI too), and root ignores file modes; so "read-only" and "unwritable" are
tested through a `connect-dev` that drops to the unprivileged ``nobody`` before it runs, on a
project directory created under a world-traversable temporary directory.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from connect_devloop import cli
from connect_devloop.tenants import TENANTS_FILE_NAME

from .conftest import descriptor_text
from .e2e import CONNECT_DEV, host_toml, write_config
from .e2e import run_cli as run_connect_dev

NOBODY = 65534
DAMAGED_LEDGER_HINT = (
    "  hint: connect-dev will not write over it: it records where the add-on may still be "
    "installed. Fix it, or uninstall the add-on by hand (Manage apps) on the hosts it names and "
    "delete it.\n"
)


# `connect-dev` as `nobody`. It drops privileges once started, not before exec: the interpreter
# may live where only root can reach it (pyenv under /root), so what the commands import lazily
# is imported first.
AS_NOBODY = f"""
import os, sys
import asyncio, encodings.utf_8_sig, fcntl, json, tempfile
import connect_devloop.cli, connect_devloop.commands.credentials, connect_devloop.config
import connect_devloop.inspection, connect_devloop.render, connect_devloop.supervisor
import connect_devloop.eventloop, connect_devloop.events
connect_devloop.cli._build_parser()  # imports every command's module (the checkout may be 0700)
os.setgroups([])
os.setgid({NOBODY})
os.setuid({NOBODY})
sys.exit(connect_devloop.cli.main(sys.argv[1:]))
"""


def run_cli(*args: str, cwd: Path, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", AS_NOBODY] if as_nobody else CONNECT_DEV
    return run_connect_dev(*args, cwd=cwd, command=command)


def assert_one_error(result: subprocess.CompletedProcess[str], message: str, hint: str) -> None:
    """Exit 1, no traceback: exactly the error line and its hint on stderr."""
    assert "Traceback" not in result.stderr
    assert result.stderr == f"connect-dev: error: {message}\n  hint: {hint}\n"
    assert result.returncode == 1


@pytest.fixture
def shared_project() -> Iterator[Path]:
    """A project `nobody` can reach and read (the pytest tmp_path is root's alone)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as another (unprivileged) user")
    top = Path(tempfile.mkdtemp(prefix="connect-dev-env-"))
    try:
        top.chmod(0o755)
        project = top / "project"
        project.mkdir(mode=0o755)
        project.chmod(0o755)
        (project / "atlassian-connect.json").write_text(descriptor_text(), encoding="utf-8")
        write_config(project, "http://127.0.0.1:9", [host_toml("jira", "http://127.0.0.1:9/jira")])
        yield project
    finally:
        shutil.rmtree(top)


def unreachable_config(project: Path) -> Path:
    # Every failure tested here comes before any host is called.
    return write_config(
        project, "http://127.0.0.1:9", [host_toml("jira", "http://127.0.0.1:9/jira")]
    )


# --- the state directory ------------------------------------------------------------------------


def test_a_read_only_state_directory_stops_up_and_down(shared_project: Path) -> None:
    state = shared_project / ".connect-dev"
    state.mkdir(mode=0o500)
    os.chown(shared_project, NOBODY, NOBODY)
    os.chown(state, NOBODY, NOBODY)
    state.chmod(0o500)
    hint = (
        "connect-dev keeps its ledger and lock in this directory; make it writable by you "
        "(chmod u+rwx), or remove it so connect-dev creates it again."
    )
    for command in ("up", "down"):
        args = (command, "--no-tui") if command == "up" else (command,)
        result = run_cli(*args, cwd=shared_project, as_nobody=True)
        assert_one_error(result, f"{state}: cannot write here: {os.strerror(errno.EACCES)}", hint)
    assert list(state.iterdir()) == []


def test_an_unwritable_project_directory_stops_up_and_down(shared_project: Path) -> None:
    # Root's 0755 directory: `nobody` reads the config but cannot create `.connect-dev`.
    for command in ("up", "down"):
        args = (command, "--no-tui") if command == "up" else (command,)
        result = run_cli(*args, cwd=shared_project, as_nobody=True)
        assert_one_error(
            result,
            f"{shared_project / '.connect-dev'}: cannot create connect-dev's state directory: "
            f"{os.strerror(errno.EACCES)}",
            f"Make {shared_project} writable by you, or run connect-dev from a project "
            "directory you own.",
        )


def test_a_state_directory_that_is_a_file_is_named_and_kept(project: Path) -> None:
    unreachable_config(project)
    state = project / ".connect-dev"
    state.write_text("my notes", encoding="utf-8")
    hint = (
        f"connect-dev keeps its state in a directory of that name; move the file away "
        f"(`mv {state} {state}.bak`) and run the command again."
    )
    for args in (("up", "--no-tui"), ("down",)):
        result = run_cli(*args, cwd=project)
        assert_one_error(
            result,
            f"{state}: is a file, not the directory connect-dev keeps its state in",
            hint,
        )
    result = run_cli("token", "GET", "/rest/api/3/myself", cwd=project)
    assert_one_error(
        result,
        f"{state / TENANTS_FILE_NAME}: cannot read: {state} is a file, not a directory",
        hint,
    )
    assert state.read_text(encoding="utf-8") == "my notes"


def test_the_state_directory_is_created_0700_by_down(project: Path) -> None:
    unreachable_config(project)
    old = os.umask(0o002)
    try:
        result = run_cli("down", cwd=project)
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((project / ".connect-dev").stat().st_mode) == 0o700


def test_a_lock_that_cannot_be_opened_stops_up(project: Path) -> None:
    unreachable_config(project)
    lock = project / ".connect-dev" / "lock"
    lock.mkdir(parents=True)
    result = run_cli("up", "--no-tui", cwd=project)
    assert_one_error(
        result,
        f"{lock}: cannot use the project lock: {os.strerror(errno.EISDIR)}",
        f"It must be a file you can write (mode 0600) in {lock.parent}; remove it if it is "
        "anything else: connect-dev creates it again.",
    )


# --- a damaged ledger ---------------------------------------------------------------------------

ENTRY = {
    "host": "jira",
    "url": "http://127.0.0.1:9/jira",
    "username": "admin",
    "key": "test-addon",
    "since": 1.0,
    "pid": 1,
}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (json.dumps({"entries": [{**ENTRY, "key": None}]}).encode(),
         'entries[0]: "key" must be a string, found null'),
        (json.dumps({"entries": [{**ENTRY, "url": 8080}]}).encode(),
         'entries[0]: "url" must be a string, found a number'),
        (json.dumps({"entries": [[ENTRY]]}).encode(),
         "entries[0] must be an object, found a list"),
        (json.dumps({"entries": {"0": ENTRY}}).encode(),
         '"entries" must be a list, found an object'),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply to be connect-dev's JSON"),
        (b"entries: none", "not JSON (line 1, column 1: Expecting value)"),
        (b'{"entries": "\xe9t\xe9"}', "not UTF-8 text (byte 14)"),
    ],
    ids=["null-key", "number-url", "list-entry", "object-entries", "nesting", "not-json",
         "not-utf8"],
)  # fmt: skip
def test_a_damaged_ledger_stops_up_and_down_and_is_kept(
    project: Path, content: bytes, reason: str
) -> None:
    unreachable_config(project)
    ledger = project / ".connect-dev" / "ledger.json"
    ledger.parent.mkdir()
    ledger.write_bytes(content)
    for args in (("up", "--no-tui"), ("down",)):
        result = run_cli(*args, cwd=project)
        assert "Traceback" not in result.stderr
        assert result.stderr == (
            f"connect-dev: error: {ledger}: the ledger is damaged: {reason}\n" + DAMAGED_LEDGER_HINT
        )
        assert result.returncode == 1
        assert result.stdout == ""
    assert ledger.read_bytes() == content


def test_a_huge_ledger_is_refused(project: Path) -> None:
    unreachable_config(project)
    ledger = project / ".connect-dev" / "ledger.json"
    ledger.parent.mkdir()
    with ledger.open("wb") as handle:
        handle.truncate(2 * 1000 * 1000 * 1000)  # sparse: 2 GB that take no disk
    result = run_cli("down", cwd=project)
    assert result.stderr == (
        f"connect-dev: error: {ledger}: the ledger is damaged: larger than 10 MB (2000 MB)\n"
        + DAMAGED_LEDGER_HINT
    )
    assert result.returncode == 1
    assert ledger.stat().st_size == 2 * 1000 * 1000 * 1000


def test_an_unreadable_ledger_is_named(shared_project: Path) -> None:
    state = shared_project / ".connect-dev"
    state.mkdir()
    (state / "ledger.json").write_text('{"entries": []}', encoding="utf-8")
    (state / "ledger.json").chmod(0o600)  # root's, so `nobody` cannot read it
    for path in (shared_project, state):
        os.chown(path, NOBODY, NOBODY)
    result = run_cli("down", cwd=shared_project, as_nobody=True)
    assert_one_error(
        result,
        f"{state / 'ledger.json'}: cannot read the ledger: permission denied",
        "Make it a readable file of yours (connect-dev writes it with mode 0600), or move "
        f"{state} away to start afresh.",
    )


# --- damaged tenant files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("tenants.json", b'{"tenants": [{"client_key": null}]}',
         'tenants[0]: "addon_base_url" is missing'),
        ("tenants.json", b'{"tenants": {"a": 1}}', '"tenants" must be a list, found an object'),
        ("tenants.json", b"[" * 100_000, "nested too deeply to be connect-dev's JSON"),
        ("tenants.json", b"\xff\xfe{}", "not UTF-8 text (byte 1)"),
        ("tenant-secrets.json", b'{"secrets": ["s3cret"]}',
         '"secrets" must be an object, found a list'),
    ],
)  # fmt: skip
def test_damaged_tenant_files_stop_logout_and_are_kept(
    project: Path, name: str, content: bytes, reason: str
) -> None:
    unreachable_config(project)
    state = project / ".connect-dev"
    state.mkdir()
    (state / name).write_bytes(content)
    result = run_cli("logout", "--tenants", cwd=project)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"connect-dev: error: {state / name}: damaged: {reason}\n")
    assert "\n  hint: Fix it, or delete it: the next install" in result.stderr
    assert result.returncode == 1
    assert (state / name).read_bytes() == content


def test_a_damaged_tenant_index_stops_token(project: Path) -> None:
    unreachable_config(project)
    state = project / ".connect-dev"
    state.mkdir()
    (state / TENANTS_FILE_NAME).write_text('{"tenants": [5]}', encoding="utf-8")
    result = run_cli("token", "GET", "/rest/api/3/myself", cwd=project)
    assert_one_error(
        result,
        f"{state / TENANTS_FILE_NAME}: damaged: tenants[0] must be an object, found a number",
        "Fix it, or delete it: the next install through `connect-dev up` writes it again "
        "(until then `connect-dev token` knows no tenant).",
    )


# --- the last resort in cli.main ----------------------------------------------------------------


def test_an_os_error_that_escapes_a_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(_: object) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/some/where")

    monkeypatch.setattr(cli, "_cmd_down", fails)
    assert cli.main(["down"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"connect-dev: error: /some/where: {os.strerror(errno.EACCES)}\n"
        "  hint: Check the permissions of that path and the directories above it.\n"
    )


@pytest.mark.parametrize(
    "content",
    [b"[" * 200_000, b"\xff\xfe", b'{"pid": 1e999, "command_sha256": "x"}', b"[]"],
    ids=["deep", "not-utf8", "huge-pid", "not-an-object"],
)
def test_a_damaged_tunnel_record_is_ignored_by_down(project: Path, content: bytes) -> None:
    unreachable_config(project)
    state = project / ".connect-dev"
    state.mkdir(mode=0o700)
    (state / "tunnel.json").write_bytes(content)
    result = run_cli("down", cwd=project)
    assert "Traceback" not in result.stderr
    assert "ignoring unreadable" in result.stderr
    assert result.returncode == 0, result.stderr
    assert not (state / "tunnel.json").exists()
