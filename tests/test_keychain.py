"""The OS keychain: accounts, unusable backends, the password lookup order, the prompt of `up`,
`login`/`logout`, and one round trip through a real Secret Service when one can run here."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import fail, null
from keyring.errors import KeyringLocked

from connect_devloop import cli
from connect_devloop.config import HostConfig, load_config
from connect_devloop.credentials import (
    EnvironmentSource,
    InlineSource,
    KeychainSource,
    Secret,
    default_sources,
    prepare_password_sources,
    resolve_password,
)
from connect_devloop.errors import CredentialsError
from connect_devloop.host import EmulatedHost, run_host
from connect_devloop.keychain import (
    NGROK_AUTHTOKEN_ACCOUNT,
    SERVICE,
    KeychainError,
    KeychainUnavailableError,
    MemoryKeychain,
    SystemKeychain,
    host_account,
    keychain_secret,
    ngrok_authtoken,
    ngrok_authtoken_lookup,
    tenant_account,
)

from .keyrings import REPO_ROOT, MemoryKeyring, memory_keyring, subprocess_keyring_env

__all__ = ["memory_keyring"]  # the autouse fixture: no test here touches the real keychain

TOKEN = "ATATT3xFfGF0-keychain-test-token"
UNAVAILABLE_MESSAGE = (
    "the OS keychain is not available here (keyring found no usable backend: fail.Keyring)"
)
UNAVAILABLE_HINT = (
    'Use password_env = "VARIABLE" in connect-dev.toml, or an inline password for hosts on '
    "loopback; or give keyring a backend: a Secret Service (GNOME Keyring or KeePassXC, in a "
    "desktop session) or `pip install keyrings.alt` (a plain file, not encrypted)."
)


def host(
    *,
    name: str = "dev-jira",
    url: str = "https://example.atlassian.net",
    password_env: str | None = None,
    password: str | None = None,
) -> HostConfig:
    return HostConfig(
        name=name,
        url=url,
        product="jira",
        username="me@example.com",
        password_env=password_env,
        password=Secret(password) if password is not None else None,
    )


class RaisingKeyring(MemoryKeyring):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def get_password(self, service: str, username: str) -> str | None:
        raise self.error

    def set_password(self, service: str, username: str, password: str) -> None:
        raise self.error


# --- accounts and the keychain itself ----------------------------------------------------------


def test_accounts_name_what_they_hold() -> None:
    assert host_account("https://Example.Atlassian.net/", "me@example.com") == (
        "me@example.com @ https://example.atlassian.net"
    )
    assert host_account("http://localhost:2990/jira/", "admin") == (
        "admin @ http://localhost:2990/jira"
    )
    assert tenant_account("my-addon", "7c4f") == "tenant my-addon 7c4f"
    assert NGROK_AUTHTOKEN_ACCOUNT == "ngrok authtoken"
    assert SERVICE == "connect-devloop"


def test_system_keychain_stores_under_the_service(memory_keyring: MemoryKeyring) -> None:
    keychain = SystemKeychain()
    keychain.set("me @ https://x", Secret(TOKEN))
    assert memory_keyring.entries == {("connect-devloop", "me @ https://x"): TOKEN}
    assert keychain.get("me @ https://x") == Secret(TOKEN)
    assert keychain.get("someone else") is None
    assert keychain.delete("me @ https://x") is True
    assert keychain.delete("me @ https://x") is False
    assert memory_keyring.entries == {}
    assert keychain.description == "tests.keyrings.MemoryKeyring"
    assert keychain.available


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (fail.Keyring(), "keyring found no usable backend: fail.Keyring"),
        (null.Keyring(), "keyring is turned off: null.Keyring"),
    ],
)
def test_no_usable_backend_is_explained(backend: Any, reason: str) -> None:
    keyring.set_keyring(backend)
    keychain = SystemKeychain()
    assert not keychain.available
    for call in (
        lambda: keychain.get("a"),
        lambda: keychain.set("a", Secret(TOKEN)),
        lambda: keychain.delete("a"),
    ):
        with pytest.raises(KeychainUnavailableError) as caught:
            call()
        assert caught.value.message == f"the OS keychain is not available here ({reason})"
        assert caught.value.hint == UNAVAILABLE_HINT
    assert keychain_secret("a") is None
    assert ngrok_authtoken() is None


def test_a_failing_backend_never_shows_the_secret() -> None:
    keyring.set_keyring(RaisingKeyring(RuntimeError(f"D-Bus said no to {TOKEN}\nmore")))
    with pytest.raises(KeychainError) as caught:
        SystemKeychain().set("me @ https://x", Secret(TOKEN))
    assert caught.value.message == (
        "could not store 'me @ https://x' in the keychain (tests.test_keychain.RaisingKeyring): "
        "RuntimeError: D-Bus said no to ***"
    )
    assert TOKEN not in str(caught.value)


def test_a_locked_keychain_says_so() -> None:
    keyring.set_keyring(RaisingKeyring(KeyringLocked("collection is locked")))
    with pytest.raises(KeychainError) as caught:
        SystemKeychain().get("me @ https://x")
    assert not isinstance(caught.value, KeychainUnavailableError)
    assert caught.value.message == (
        "could not read 'me @ https://x' in the keychain (tests.test_keychain.RaisingKeyring): "
        "KeyringLocked: collection is locked"
    )
    assert caught.value.hint == "Unlock the keychain (log in to the desktop session) and try again."


def test_ngrok_authtoken_is_read_from_the_keychain() -> None:
    assert ngrok_authtoken() is None
    SystemKeychain().set(NGROK_AUTHTOKEN_ACCOUNT, Secret("2abcNgrokToken"))
    assert ngrok_authtoken() == Secret("2abcNgrokToken")
    assert keychain_secret(NGROK_AUTHTOKEN_ACCOUNT) == Secret("2abcNgrokToken")
    assert ngrok_authtoken_lookup() == "2abcNgrokToken"
    SystemKeychain().delete(NGROK_AUTHTOKEN_ACCOUNT)
    assert ngrok_authtoken_lookup() is None
    keyring.set_keyring(fail.Keyring())
    assert ngrok_authtoken_lookup() is None


# --- the lookup order ---------------------------------------------------------------------------


def test_default_order_is_environment_keychain_inline() -> None:
    assert [type(s) for s in default_sources()] == [EnvironmentSource, KeychainSource, InlineSource]


def test_keychain_comes_after_the_environment_and_before_inline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = host(password_env="CONNECT_DEV_TEST_TOKEN", password="inline")
    SystemKeychain().set(host_account(target.url, target.username), Secret("from-keychain"))
    monkeypatch.setenv("CONNECT_DEV_TEST_TOKEN", "from-env")
    assert resolve_password(target).reveal() == "from-env"
    monkeypatch.delenv("CONNECT_DEV_TEST_TOKEN")
    assert resolve_password(target).reveal() == "from-keychain"
    SystemKeychain().delete(host_account(target.url, target.username))
    assert resolve_password(target).reveal() == "inline"


def test_nothing_found_suggests_login() -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_password(host(name="dev-jira"))
    assert caught.value.message == "host 'dev-jira': no password or API token configured"
    assert caught.value.hint == (
        "Run `connect-dev login dev-jira` to keep an API token in the OS keychain, add "
        '`password_env = "VARIABLE"` to the [[hosts]] entry (Cloud: an API token from '
        "id.atlassian.com), or `password` for a local host."
    )


def test_nothing_found_without_a_keychain_names_the_alternatives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring.set_keyring(fail.Keyring())
    monkeypatch.delenv("CONNECT_DEV_TEST_TOKEN", raising=False)
    with pytest.raises(CredentialsError) as caught:
        resolve_password(host(password_env="CONNECT_DEV_TEST_TOKEN"))
    assert caught.value.message == (
        "host 'dev-jira': environment variable CONNECT_DEV_TEST_TOKEN is not set; "
        + UNAVAILABLE_MESSAGE
    )
    assert caught.value.hint == (
        "export CONNECT_DEV_TEST_TOKEN=<API token> before `connect-dev up`, or set `password` "
        "in the [[hosts]] entry for a local host. To use the keychain, give keyring a backend: "
        "a Secret Service (GNOME Keyring or KeePassXC, in a desktop session) or `pip install "
        "keyrings.alt` (a plain file, not encrypted)."
    )


def test_a_host_name_with_spaces_is_quoted_in_the_hint() -> None:
    with pytest.raises(CredentialsError) as caught:
        resolve_password(host(name="my jira"))
    assert "`connect-dev login 'my jira'`" in (caught.value.hint or "")


# --- the prompt of `up` -------------------------------------------------------------------------


class Terminal:
    """Answers for getpass and input, and what was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []
        self.out = io.StringIO()

    def __call__(self, prompt: str) -> str:
        self.asked.append(prompt)
        return self.answers.pop(0)


def test_without_a_terminal_nothing_is_asked() -> None:
    terminal = Terminal()
    assert prepare_password_sources([host()], interactive=False, ask=terminal) is None
    assert terminal.asked == []


def test_asks_once_per_host_without_a_password_and_keeps_it(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECT_DEV_TEST_TOKEN", "from-env")
    with_env = host(
        name="with-env", url="https://a.atlassian.net", password_env="CONNECT_DEV_TEST_TOKEN"
    )
    bare = host(name="bare", url="https://b.atlassian.net")
    terminal = Terminal(TOKEN, "")
    sources = prepare_password_sources(
        [with_env, bare, bare], interactive=True, ask=terminal, confirm=terminal, out=terminal.out
    )
    assert terminal.asked == [
        "API token or password for me@example.com on https://b.atlassian.net: ",
        "Keep it in the OS keychain so the next run finds it? [Y/n] ",
    ]
    assert sources is not None
    assert resolve_password(bare, sources) == Secret(TOKEN)
    assert resolve_password(with_env, sources) == Secret("from-env")
    assert memory_keyring.entries == {
        ("connect-devloop", "me@example.com @ https://b.atlassian.net"): TOKEN
    }
    assert terminal.out.getvalue() == (
        "connect-dev: host 'bare': no password or API token configured\n"
        "connect-dev: kept in the keychain (tests.keyrings.MemoryKeyring); "
        "`connect-dev logout bare` removes it.\n"
    )
    assert TOKEN not in terminal.out.getvalue()


def test_a_no_keeps_it_for_this_run_only(memory_keyring: MemoryKeyring) -> None:
    terminal = Terminal(TOKEN, "n")
    sources = prepare_password_sources(
        [host()], interactive=True, ask=terminal, confirm=terminal, out=terminal.out
    )
    assert sources is not None
    assert resolve_password(host(), sources) == Secret(TOKEN)
    assert memory_keyring.entries == {}


def test_without_a_keychain_it_says_so_and_does_not_offer() -> None:
    keyring.set_keyring(fail.Keyring())
    terminal = Terminal(TOKEN)
    sources = prepare_password_sources(
        [host()], interactive=True, ask=terminal, confirm=terminal, out=terminal.out
    )
    assert sources is not None
    assert resolve_password(host(), sources) == Secret(TOKEN)
    assert len(terminal.asked) == 1
    assert terminal.out.getvalue() == (
        f"connect-dev: host 'dev-jira': no password or API token configured; "
        f"{UNAVAILABLE_MESSAGE}\n"
        f"connect-dev: not kept: {UNAVAILABLE_MESSAGE}. It is used for this run only.\n"
    )


def test_an_empty_answer_skips_the_host() -> None:
    terminal = Terminal("")
    sources = prepare_password_sources(
        [host()], interactive=True, ask=terminal, confirm=terminal, out=terminal.out
    )
    assert sources is not None
    with pytest.raises(CredentialsError):
        resolve_password(host(), sources)
    assert terminal.out.getvalue().endswith(
        "connect-dev: nothing entered; 'dev-jira' is skipped.\n"
    )


def test_up_prompts_on_a_real_terminal_without_echo(tmp_path: Path) -> None:
    """`connect-dev up` on a pseudo-terminal: asks (without echo), keeps the answer in the
    keychain when told to, and logs in to the host with it."""
    import pty
    import termios

    keyring_file = tmp_path / "keyring.json"
    with emulated_host_in_thread(users={"admin": TOKEN}) as site:
        config = write_project(tmp_path, site.base_url, password=None)
        main_fd, child_fd = pty.openpty()

        def take_terminal() -> None:
            os.setsid()
            import fcntl

            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        process = subprocess.Popen(
            [*CONNECT_DEV, "up", "--no-tui", "--log-format", "json", "--config", str(config)],
            stdin=child_fd,
            stdout=subprocess.PIPE,
            stderr=child_fd,
            env=subprocess_keyring_env(keyring_file),
            cwd=REPO_ROOT,
            preexec_fn=take_terminal,
        )
        os.close(child_fd)
        try:
            screen = read_until(main_fd, b"on " + site.base_url.encode() + b": ")
            assert b"host 'local': no password or API token configured" in screen
            os.write(main_fd, TOKEN.encode() + b"\n")
            screen = read_until(main_fd, b"[Y/n] ")
            assert TOKEN.encode() not in screen, "the token was echoed"
            os.write(main_fd, b"y\n")
            screen += read_until(main_fd, b"removes it.")
            assert process.stdout is not None
            for line in process.stdout:
                if b'"ready"' in line:
                    break
            # The answer was the password `up` used: the host let "admin" in.
            assert site.accepted_logins() == ["admin"]
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
            os.close(main_fd)
    stored = keyring_file.read_text(encoding="utf-8")
    assert f"admin @ {site.base_url}" in stored
    assert TOKEN not in screen.decode(errors="replace")


# --- login / logout -----------------------------------------------------------------------------

CONNECT_DEV = [sys.executable, "-m", "connect_devloop"]


class SiteInThread:
    """An emulated host on its own event loop in a thread, for commands that run asyncio.run."""

    def __init__(self, host: EmulatedHost, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.loop = loop
        self.base_url = host.base_url

    def accepted_logins(self) -> list[str]:
        """Users whose UPM calls the host answered with a success."""

        async def users() -> list[str]:
            return sorted({c.user for c in self.host.record.upm_calls if c.user and c.status < 400})

        return asyncio.run_coroutine_threadsafe(users(), self.loop).result(5)


@contextlib.contextmanager
def emulated_host_in_thread(users: dict[str, str]) -> Iterator[SiteInThread]:
    loop = asyncio.new_event_loop()
    started: list[EmulatedHost] = []
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with run_host(users=users) as site:
            started.append(site)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the emulated host did not start"
    try:
        yield SiteInThread(started[0], loop)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def write_project(directory: Path, host_url: str, *, password: str | None) -> Path:
    from .conftest import descriptor_text

    (directory / "atlassian-connect.json").write_text(descriptor_text(), encoding="utf-8")
    inline = f'password = "{password}"\n' if password is not None else ""
    config = directory / "connect-dev.toml"
    config.write_text(
        '[addon]\nurl = "http://127.0.0.1:9"\n[proxy]\nport = 0\n[tunnel]\nprovider = "none"\n'
        f'[[hosts]]\nname = "local"\nurl = "{host_url}"\nusername = "admin"\n{inline}'
        '[[hosts]]\nname = "other"\nurl = "http://127.0.0.1:9/jira"\nusername = "admin"\n'
        'password = "admin"\n',
        encoding="utf-8",
    )
    return config


def read_until(fd: int, marker: bytes, timeout: float = 20.0) -> bytes:
    import select
    import time

    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {marker!r}, saw {seen!r}"
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                chunk = b""
            assert chunk, f"the terminal closed before {marker!r}; saw {seen!r}"
            seen += chunk
    return seen


def run_cli(
    argv: list[str], stdin: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_login_checks_the_token_with_the_host_then_keeps_it(
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with emulated_host_in_thread(users={"admin": TOKEN}) as site:
        config = write_project(tmp_path, site.base_url, password=None)
        code, out, err = run_cli(
            ["login", "--config", str(config), "--password-stdin"],
            TOKEN + "\n",
            monkeypatch,
            capsys,
        )
    assert code == 0, err
    assert out == ""
    account = f"admin @ {site.base_url}"
    assert err == (
        f"connect-dev: local: the host accepted it; kept in the keychain "
        f"(tests.keyrings.MemoryKeyring) as {account!r}\n"
    )
    assert memory_keyring.entries == {("connect-devloop", account): TOKEN}
    # `up` now finds it, before the inline password of nobody.
    target = next(h for h in load_config(config).hosts if h.name == "local")
    assert resolve_password(target) == Secret(TOKEN)


def test_login_with_a_wrong_token_stores_nothing(
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with emulated_host_in_thread(users={"admin": TOKEN}) as site:
        config = write_project(tmp_path, site.base_url, password=None)
        code, _, err = run_cli(
            ["login", "local", "--config", str(config), "--password-stdin"],
            "not-the-token-123\n",
            monkeypatch,
            capsys,
        )
    assert code == 1
    assert err.startswith(f"connect-dev: local: not stored: {site.base_url} rejected the login")
    assert "not-the-token-123" not in err
    assert memory_keyring.entries == {}


def test_login_without_a_terminal_or_stdin_flag_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path, "http://127.0.0.1:9/jira", password=None)
    code, _, err = run_cli(["login", "--config", str(config)], "", monkeypatch, capsys)
    assert code == 1
    assert err == (
        "connect-dev: error: no terminal to ask for the secret on\n"
        '  hint: Pipe it instead: printf %s "$TOKEN" | connect-dev login ... --password-stdin\n'
    )


def test_login_without_a_keychain_fails_with_the_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keyring.set_keyring(fail.Keyring())
    config = write_project(tmp_path, "http://127.0.0.1:9/jira", password=None)
    code, _, err = run_cli(
        ["login", "local", "--no-check", "--config", str(config), "--password-stdin"],
        TOKEN + "\n",
        monkeypatch,
        capsys,
    )
    assert code == 1
    assert err == f"connect-dev: error: {UNAVAILABLE_MESSAGE}\n  hint: {UNAVAILABLE_HINT}\n"


def test_login_defaults_to_hosts_without_a_password_and_an_unknown_host_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path, "http://127.0.0.1:9/jira", password="admin")
    code, _, err = run_cli(["login", "--config", str(config)], "", monkeypatch, capsys)
    assert code == 0
    assert err == (
        "connect-dev: every host already has a password (environment, keychain or config "
        "file); name one to replace its keychain entry: connect-dev login HOST\n"
    )
    code, _, err = run_cli(["login", "nope", "--config", str(config)], "", monkeypatch, capsys)
    assert code == 2
    assert err == (
        f"connect-dev: error: {config}: no host 'nope' in connect-dev.toml\n"
        "  hint: Name a [[hosts]] entry by its name or URL. Hosts: local, other.\n"
    )


def test_logout_removes_host_and_ngrok_entries(
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_project(tmp_path, "http://127.0.0.1:9/jira", password=None)
    code, _, err = run_cli(
        ["login", "--ngrok", "--password-stdin"], "2abcNgrok\n", monkeypatch, capsys
    )
    assert code == 0
    assert (
        err
        == "connect-dev: kept the ngrok authtoken in the keychain (tests.keyrings.MemoryKeyring)\n"
    )
    assert ngrok_authtoken() == Secret("2abcNgrok")
    SystemKeychain().set("admin @ http://127.0.0.1:9/jira", Secret(TOKEN))

    code, _, err = run_cli(["logout", "--config", str(config)], "", monkeypatch, capsys)
    assert code == 0
    assert err == (
        "connect-dev: local: removed 'admin @ http://127.0.0.1:9/jira' from the keychain\n"
        "connect-dev: other: nothing stored in the keychain\n"
    )
    code, _, err = run_cli(["logout", "--ngrok"], "", monkeypatch, capsys)
    assert err == "connect-dev: removed the ngrok authtoken\n"
    code, _, err = run_cli(["logout", "--ngrok"], "", monkeypatch, capsys)
    assert err == "connect-dev: no ngrok authtoken was stored\n"
    assert memory_keyring.entries == {}


def test_memory_keychain_stands_in_for_the_protocol() -> None:
    keychain = MemoryKeychain()
    target = host()
    keychain.set(host_account(target.url, target.username), Secret(TOKEN))
    assert resolve_password(target, [KeychainSource(keychain)]) == Secret(TOKEN)
    assert keychain.delete(host_account(target.url, target.username))
    assert not keychain.delete(host_account(target.url, target.username))


# --- a real Secret Service ----------------------------------------------------------------------


def secret_service_unavailable() -> str | None:
    missing = [
        tool for tool in ("dbus-run-session", "gnome-keyring-daemon") if not shutil.which(tool)
    ]
    if missing:
        return (
            f"{' and '.join(missing)} not installed: apt-get install --no-install-recommends "
            "gnome-keyring dbus (.ci/run does)"
        )
    return None


@pytest.mark.skipif(
    secret_service_unavailable() is not None, reason=str(secret_service_unavailable())
)
def test_login_and_up_lookup_through_a_real_secret_service(tmp_path: Path) -> None:
    """`login` stores in GNOME Keyring over D-Bus, the lookup `up` uses finds it, `logout`
    removes it; in a private D-Bus session with its own keyring directory."""
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    config = write_project(tmp_path, "http://127.0.0.1:9/jira", password=None)
    env = subprocess_keyring_env(None)
    del env["PYTHON_KEYRING_BACKEND"]
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), XDG_DATA_HOME=str(home / "data"))
    lookup = (
        "from connect_devloop.config import load_config; "
        "from connect_devloop.credentials import KeychainSource; "
        "from connect_devloop.keychain import SystemKeychain; "
        f"host = load_config(__import__('pathlib').Path({str(config)!r})).hosts[0]; "
        "print(SystemKeychain().description); "
        "found = KeychainSource().lookup(host); "
        f"print('found' if found is not None and found.reveal() == {TOKEN!r} else 'missing')"
    )
    script = (
        "echo -n unlock-me | gnome-keyring-daemon --unlock --components=secrets >/dev/null && "
        f"printf '%s\\n' {TOKEN} | {sys.executable} -m connect_devloop login local --no-check "
        f"--password-stdin --config {config} && "
        f'{sys.executable} -c "{lookup}" && '
        f"{sys.executable} -m connect_devloop logout local --config {config} && "
        f'{sys.executable} -c "{lookup}"'
    )
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "SecretService.Keyring",
        "found",
        "SecretService.Keyring",
        "missing",
    ]
    assert "kept in the keychain (SecretService.Keyring) as 'admin @ http://127.0.0.1:9/jira'" in (
        result.stderr
    )
    assert "local: removed 'admin @ http://127.0.0.1:9/jira' from the keychain" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    # The secret went to GNOME Keyring's own store in this test's HOME, not anywhere else.
    assert list((home / "data" / "keyrings").iterdir())
