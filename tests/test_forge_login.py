"""The Forge CLI's login (forge/login.py): FORGE_EMAIL and FORGE_API_TOKEN from the environment or
the keychain, and `connect-dev login --forge` / `logout --forge`, in process and as real
subprocesses; the token never appears in any output."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from keyring.errors import KeyringLocked

from connect_devloop import cli
from connect_devloop.errors import CredentialsError, DevloopError, ForgeLoginError
from connect_devloop.forge.login import (
    FORGE_API_TOKEN_ACCOUNT,
    FORGE_EMAIL_ACCOUNT,
    ForgeLogin,
    find_forge_login,
    forge_login_env,
    remove_forge_login,
    store_forge_login,
)
from connect_devloop.keychain import (
    SERVICE,
    KeychainError,
    MemoryKeychain,
    SystemKeychain,
)
from connect_devloop.secret import Secret

from .keyrings import REPO_ROOT, MemoryKeyring, subprocess_keyring_env
from .test_keychain import RaisingKeyring, read_until

EMAIL = "dev@example.com"
TOKEN = "ATATT3xFfGF0-forge-login-planted-token"
CONNECT_DEV = [sys.executable, "-m", "connect_devloop"]
LOGIN = ["login", "--forge", "--email", EMAIL, "--password-stdin"]
HALF_HINT = (
    "Set both FORGE_EMAIL and FORGE_API_TOKEN, or neither and keep the login in the OS keychain "
    "with `connect-dev login --forge`."
)
UNAVAILABLE_MESSAGE = (
    "the OS keychain is not available here (keyring found no usable backend: fail.Keyring)"
)


@pytest.fixture(autouse=True)
def no_forge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own FORGE_EMAIL/FORGE_API_TOKEN never reach these tests."""
    monkeypatch.delenv("FORGE_EMAIL", raising=False)
    monkeypatch.delenv("FORGE_API_TOKEN", raising=False)


def stored(email: str = EMAIL, token: str = TOKEN) -> MemoryKeychain:
    return MemoryKeychain({FORGE_EMAIL_ACCOUNT: email, FORGE_API_TOKEN_ACCOUNT: token})


# --- find_forge_login: the environment ---------------------------------------------------------


def test_accounts_live_under_the_service_of_every_entry() -> None:
    assert (SERVICE, FORGE_EMAIL_ACCOUNT, FORGE_API_TOKEN_ACCOUNT) == (
        "connect-devloop",
        "forge email",
        "forge api token",
    )


def test_both_variables_make_an_environment_login() -> None:
    environ = {"FORGE_EMAIL": EMAIL, "FORGE_API_TOKEN": TOKEN}
    login = find_forge_login(environ, stored("keychain@example.com", "from-keychain"))
    assert login == ForgeLogin(EMAIL, Secret(TOKEN), "environment")


def test_the_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_EMAIL", EMAIL)
    monkeypatch.setenv("FORGE_API_TOKEN", TOKEN)
    assert find_forge_login(keychain=MemoryKeychain()) == ForgeLogin(
        EMAIL, Secret(TOKEN), "environment"
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FORGE_EMAIL": EMAIL}, "FORGE_EMAIL is set but FORGE_API_TOKEN is not"),
        ({"FORGE_API_TOKEN": TOKEN}, "FORGE_API_TOKEN is set but FORGE_EMAIL is not"),
        (
            {"FORGE_EMAIL": EMAIL, "FORGE_API_TOKEN": ""},
            "FORGE_EMAIL is set but FORGE_API_TOKEN is empty",
        ),
        (
            {"FORGE_EMAIL": "", "FORGE_API_TOKEN": TOKEN},
            "FORGE_API_TOKEN is set but FORGE_EMAIL is empty",
        ),
    ],
)
def test_half_a_login_in_the_environment_is_an_error(environ: dict[str, str], message: str) -> None:
    # Even with a whole login in the keychain: the Forge CLI would see the half one.
    with pytest.raises(ForgeLoginError) as caught:
        find_forge_login(environ, stored())
    assert caught.value.message == f"{message}: the Forge CLI needs both, or neither"
    assert caught.value.hint == HALF_HINT
    assert isinstance(caught.value, DevloopError)
    assert isinstance(caught.value, CredentialsError)
    assert TOKEN not in str(caught.value) + caught.value.hint
    assert EMAIL not in str(caught.value) + caught.value.hint


# --- find_forge_login: the keychain -------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"FORGE_EMAIL": "", "FORGE_API_TOKEN": ""}])
def test_without_the_variables_the_keychain_login_is_used(environ: dict[str, str]) -> None:
    assert find_forge_login(environ, stored()) == ForgeLogin(EMAIL, Secret(TOKEN), "keychain")


def test_the_system_keychain_is_the_default(memory_keyring: MemoryKeyring) -> None:
    assert find_forge_login({}) is None
    SystemKeychain().set(FORGE_EMAIL_ACCOUNT, Secret(EMAIL))
    SystemKeychain().set(FORGE_API_TOKEN_ACCOUNT, Secret(TOKEN))
    assert memory_keyring.entries == {
        ("connect-devloop", "forge email"): EMAIL,
        ("connect-devloop", "forge api token"): TOKEN,
    }
    assert find_forge_login({}) == ForgeLogin(EMAIL, Secret(TOKEN), "keychain")


@pytest.mark.parametrize(
    "entries",
    [{}, {FORGE_EMAIL_ACCOUNT: EMAIL}, {FORGE_API_TOKEN_ACCOUNT: TOKEN}],
    ids=["nothing", "email only", "token only"],
)
def test_no_whole_login_anywhere_is_none(entries: dict[str, str]) -> None:
    assert find_forge_login({}, MemoryKeychain(entries)) is None


@pytest.mark.parametrize(
    "backend",
    [fail.Keyring(), RaisingKeyring(KeyringLocked("collection is locked"))],
    ids=["no backend", "locked"],
)
def test_a_keychain_that_fails_finds_nothing_and_says_so_at_debug_level(
    backend: object, caplog: pytest.LogCaptureFixture
) -> None:
    keyring.set_keyring(backend)  # type: ignore[arg-type]
    with caplog.at_level(logging.DEBUG, logger="connect_devloop.forge.login"):
        assert find_forge_login({}) is None
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith("keychain lookup of the Forge login skipped: ")


# --- the login as values ------------------------------------------------------------------------


def test_the_child_environment_holds_both_variables() -> None:
    login = ForgeLogin(EMAIL, Secret(TOKEN), "keychain")
    assert forge_login_env(login) == {"FORGE_EMAIL": EMAIL, "FORGE_API_TOKEN": TOKEN}


def test_a_login_never_shows_its_token(caplog: pytest.LogCaptureFixture) -> None:
    login = ForgeLogin(EMAIL, Secret(TOKEN), "environment")
    assert repr(login) == (
        "ForgeLogin(email='dev@example.com', api_token=Secret('***'), source='environment')"
    )
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("tests.forge_login").debug("login %s %r", login, login)
    assert TOKEN not in str(login) + caplog.text


def test_store_and_remove() -> None:
    keychain = MemoryKeychain()
    store_forge_login(EMAIL, Secret(TOKEN), keychain)
    assert keychain.entries == {"forge email": EMAIL, "forge api token": TOKEN}
    assert remove_forge_login(keychain) is True
    assert keychain.entries == {}
    assert remove_forge_login(keychain) is False


class TokenRefusingKeychain(MemoryKeychain):
    def set(self, account: str, secret: Secret) -> None:
        if account == FORGE_API_TOKEN_ACCOUNT:
            raise KeychainError(f"could not store {account!r} in the keychain (test)")
        super().set(account, secret)


def test_a_token_the_keychain_refuses_takes_the_new_email_back() -> None:
    keychain = TokenRefusingKeychain({FORGE_API_TOKEN_ACCOUNT: "older-token"})
    with pytest.raises(KeychainError):
        store_forge_login("new@example.com", Secret(TOKEN), keychain)
    # No new email beside an older token: find_forge_login sees half a login, so none.
    assert keychain.entries == {FORGE_API_TOKEN_ACCOUNT: "older-token"}
    assert find_forge_login({}, keychain) is None


# --- login --forge / logout --forge, in process -------------------------------------------------


def run_cli(
    argv: list[str],
    stdin: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    return code, out, err


def test_login_keeps_both_and_logout_removes_both(
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(LOGIN, TOKEN + "\n", monkeypatch, capsys)
    assert (code, out) == (0, "")
    assert err == (
        f"connect-dev: kept the Forge login of {EMAIL} in the keychain "
        "(tests.keyrings.MemoryKeyring) as 'forge email' and 'forge api token'\n"
    )
    assert memory_keyring.entries == {
        ("connect-devloop", "forge email"): EMAIL,
        ("connect-devloop", "forge api token"): TOKEN,
    }
    assert find_forge_login() == ForgeLogin(EMAIL, Secret(TOKEN), "keychain")

    code, out, err = run_cli(["logout", "--forge"], "", monkeypatch, capsys)
    assert (code, out, err) == (0, "", "connect-dev: removed the Forge login\n")
    assert memory_keyring.entries == {}
    code, out, err = run_cli(["logout", "--forge"], "", monkeypatch, capsys)
    assert (code, out, err) == (0, "", "connect-dev: no Forge login was stored\n")


def test_login_says_when_the_environment_wins(
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FORGE_EMAIL", "other@example.com")
    monkeypatch.delenv("FORGE_API_TOKEN", raising=False)
    code, _, err = run_cli(LOGIN, TOKEN + "\n", monkeypatch, capsys)
    assert code == 0
    assert err.splitlines()[1] == (
        "connect-dev: note: FORGE_EMAIL/FORGE_API_TOKEN are set here, and the environment wins "
        "over the keychain"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["login", "--forge", "dev-jira"], "login --forge takes no HOST"),
        (["login", "--forge", "--ngrok"], "login takes --ngrok or --forge, not both"),
        (["login", "--ngrok", "--email", EMAIL], "--email goes with login --forge"),
        (["login", "--forge", "--email", "nobody"], "--email 'nobody': not an email address"),
        (["logout", "--forge", "dev-jira"], "logout --ngrok/--forge/--tenants take no HOST"),
    ],
)
def test_usage_errors(
    argv: list[str],
    message: str,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(argv, TOKEN + "\n", monkeypatch, capsys)
    assert (code, out, err) == (2, "", f"connect-dev: error: {message}\n")
    assert memory_keyring.entries == {}


@pytest.mark.parametrize(
    ("argv", "message", "hint"),
    [
        (
            ["login", "--forge", "--password-stdin"],
            "no terminal to ask for the Atlassian account email on",
            'Name it and pipe the token: printf %s "$TOKEN" | connect-dev login --forge '
            "--email you@example.com --password-stdin",
        ),
        (
            ["login", "--forge", "--email", EMAIL],
            "no terminal to ask for the secret on",
            'Pipe it instead: printf %s "$TOKEN" | connect-dev login ... --password-stdin',
        ),
    ],
)
def test_without_a_terminal_it_explains(
    argv: list[str],
    message: str,
    hint: str,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(argv, TOKEN + "\n", monkeypatch, capsys)
    assert code == 1
    assert err == f"connect-dev: error: {message}\n  hint: {hint}\n"
    assert memory_keyring.entries == {}


def test_an_empty_token_stores_nothing(
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(LOGIN, "\n", monkeypatch, capsys)
    assert (code, err) == (1, "connect-dev: error: nothing entered; nothing stored\n")
    assert memory_keyring.entries == {}


def test_without_a_keychain_login_names_the_environment_and_logout_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keyring.set_keyring(fail.Keyring())
    code, _, err = run_cli(LOGIN, TOKEN + "\n", monkeypatch, capsys)
    assert code == 1
    assert err == (
        f"connect-dev: error: {UNAVAILABLE_MESSAGE}\n"
        "  hint: Set FORGE_EMAIL and FORGE_API_TOKEN in the environment instead; or give "
        "keyring a backend: a Secret Service (GNOME Keyring or KeePassXC, in a desktop session) "
        "or `pip install keyrings.alt` (a plain file, not encrypted).\n"
    )
    code, _, err = run_cli(["logout", "--forge"], "", monkeypatch, capsys)
    assert (code, err) == (0, f"connect-dev: nothing to remove: {UNAVAILABLE_MESSAGE}\n")


# --- real subprocesses --------------------------------------------------------------------------

LOOKUP = (
    "from connect_devloop.forge.login import find_forge_login, forge_login_env; "
    "login = find_forge_login(); "
    "print(f'{login.source} {login.email}' if login else 'none'); "
    f"print('token matches' if login and forge_login_env(login)['FORGE_API_TOKEN'] == {TOKEN!r} "
    "else 'no token')"
)


def run(argv: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv,
        input=stdin,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert TOKEN not in result.stdout + result.stderr
    return result


def test_login_lookup_and_logout_across_processes(tmp_path: Path) -> None:
    keyring_file = tmp_path / "keyring.json"
    env = subprocess_keyring_env(keyring_file)

    login = run(
        [*CONNECT_DEV, "-v", *LOGIN],
        env,
        TOKEN + "\n",
    )
    assert login.returncode == 0, login.stderr
    assert login.stdout == ""
    assert login.stderr.endswith(
        f"connect-dev: kept the Forge login of {EMAIL} in the keychain "
        "(tests.keyrings.FileKeyring) as 'forge email' and 'forge api token'\n"
    )
    assert TOKEN in keyring_file.read_text(encoding="utf-8")  # where it was meant to go

    found = run([sys.executable, "-c", LOOKUP], env)
    assert found.stdout.splitlines() == [f"keychain {EMAIL}", "token matches"], found.stderr

    half = run([sys.executable, "-c", LOOKUP], {**env, "FORGE_API_TOKEN": TOKEN})
    assert half.returncode == 1
    assert half.stderr.splitlines()[-1] == (
        "connect_devloop.errors.ForgeLoginError: FORGE_API_TOKEN is set but FORGE_EMAIL is "
        "not: the Forge CLI needs both, or neither"
    )

    logout = run([*CONNECT_DEV, "logout", "--forge"], env)
    assert (logout.returncode, logout.stdout, logout.stderr) == (
        0,
        "",
        "connect-dev: removed the Forge login\n",
    )
    gone = run([sys.executable, "-c", LOOKUP], env)
    assert gone.stdout.splitlines() == ["none", "no token"], gone.stderr
    assert TOKEN not in keyring_file.read_text(encoding="utf-8")


def test_login_asks_on_a_real_terminal_and_never_echoes_the_token(tmp_path: Path) -> None:
    """`connect-dev login --forge` on a pseudo-terminal: the email is asked with echo, the token
    without; both land in the keychain."""
    import pty

    keyring_file = tmp_path / "keyring.json"
    env = subprocess_keyring_env(keyring_file)
    main_fd, child_fd = pty.openpty()

    def take_terminal() -> None:
        import fcntl
        import termios

        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [*CONNECT_DEV, "login", "--forge"],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        env=env,
        cwd=REPO_ROOT,
        preexec_fn=take_terminal,
    )
    os.close(child_fd)
    try:
        screen = read_until(main_fd, b"Atlassian account email: ")
        os.write(main_fd, EMAIL.encode() + b"\n")
        screen += read_until(main_fd, f"Forge API token for {EMAIL}: ".encode())
        assert EMAIL.encode() + b"\r\n" in screen, "the email was not echoed"
        os.write(main_fd, TOKEN.encode() + b"\n")
        screen += read_until(main_fd, b"'forge api token'")
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        os.close(main_fd)
    assert TOKEN.encode() not in screen, "the token was echoed"
    found = run([sys.executable, "-c", LOOKUP], env)
    assert found.stdout.splitlines() == [f"keychain {EMAIL}", "token matches"], found.stderr
