"""credentials.py: Secret never shows its value; where a host's password comes from."""

from __future__ import annotations

import argparse
import copy
import logging
import pickle
import webbrowser
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from connect_devloop.config import HostConfig
from connect_devloop.credentials import (
    EnvironmentSource,
    InlineSource,
    Secret,
    resolve_password,
)
from connect_devloop.errors import CredentialsError, DevloopError

from .keyrings import memory_keyring

__all__ = ["memory_keyring"]  # autouse: the keychain in these lookups is an in-memory one

VALUE = "ATATT3xFfGF0-very-secret"


def host(
    password_env: str | None = None, password: str | None = None, name: str = "dev-jira"
) -> HostConfig:
    return HostConfig(
        name=name,
        url="https://example.atlassian.net",
        product="jira",
        username="me@example.com",
        password_env=password_env,
        password=Secret(password) if password is not None else None,
    )


# --- Secret -------------------------------------------------------------------------------------


def test_secret_reveals_only_through_reveal() -> None:
    secret = Secret(VALUE)
    assert secret.reveal() == VALUE


@pytest.mark.parametrize(
    "shown",
    [
        lambda s: repr(s),
        lambda s: str(s),
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: f"{s!s}",
        lambda s: f"{s!a}",
        lambda s: format(s),
        # The older formatting styles on purpose: logging and old code use them.
        lambda s: "{}".format(s),  # noqa: UP032
        lambda s: "{0!r}".format(s),  # noqa: UP030, UP032
        lambda s: "%s" % s,  # noqa: UP031
        lambda s: "%r" % (s,),  # noqa: UP031
        lambda s: str([s, {"token": s}]),
        lambda s: repr((s,)),
    ],
)
def test_secret_never_shows(shown: object) -> None:
    text = shown(Secret(VALUE))  # type: ignore[operator]
    assert VALUE not in text
    assert "***" in text


def test_secret_exact_forms() -> None:
    secret = Secret(VALUE)
    assert repr(secret) == "Secret('***')"
    assert str(secret) == f"{secret}" == "***"


def test_secret_in_a_dataclass_repr() -> None:
    text = repr(host(password=VALUE))
    assert VALUE not in text
    assert "password=Secret('***')" in text


def test_secret_never_shows_in_logging(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.credentials")
    secret = Secret(VALUE)
    with caplog.at_level(logging.DEBUG, logger="tests.credentials"):
        logger.debug("password %s", secret)
        logger.info("password %r", secret)
        logger.warning(secret)
        logger.error("mapping %(token)s", {"token": secret})
        logger.error("in a host: %s", host(password=VALUE))

    assert VALUE not in caplog.text
    assert [record.getMessage() for record in caplog.records] == [
        "password ***",
        "password Secret('***')",
        "***",
        "mapping ***",
        f"in a host: {host(password=VALUE)!r}",
    ]


def test_secret_has_no_instance_dict_to_leak_through() -> None:
    secret = Secret(VALUE)
    with pytest.raises(TypeError):
        vars(secret)
    with pytest.raises(AttributeError):
        secret.other = 1  # type: ignore[attr-defined]


def test_secret_equality_hash_and_truth() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert hash(Secret("a")) == hash(Secret("a"))
    assert len({Secret("a"), Secret("a"), Secret("b")}) == 2
    assert Secret("a")
    assert not Secret("")


def test_secret_survives_copy_and_pickle() -> None:
    secret = Secret(VALUE)
    assert copy.deepcopy(secret).reveal() == VALUE
    assert pickle.loads(pickle.dumps(secret)) == secret


# --- sources ------------------------------------------------------------------------------------


def test_environment_source() -> None:
    source = EnvironmentSource({"JIRA_API_TOKEN": VALUE, "EMPTY": ""})
    assert source.name == "environment"
    assert source.lookup(host(password_env="JIRA_API_TOKEN")) == Secret(VALUE)
    assert source.lookup(host(password_env="MISSING")) is None
    assert source.lookup(host(password_env="EMPTY")) is None
    assert source.lookup(host()) is None


def test_environment_source_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECT_DEV_TEST_TOKEN", VALUE)
    assert EnvironmentSource().lookup(host(password_env="CONNECT_DEV_TEST_TOKEN")) == Secret(VALUE)


def test_inline_source() -> None:
    source = InlineSource()
    assert source.name == "config file"
    assert source.lookup(host(password="admin")) == Secret("admin")
    assert source.lookup(host()) is None


# --- resolve_password ---------------------------------------------------------------------------


def test_environment_comes_before_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECT_DEV_TEST_TOKEN", "from-env")
    target = host(password_env="CONNECT_DEV_TEST_TOKEN", password="inline")
    assert resolve_password(target).reveal() == "from-env"


def test_inline_when_the_variable_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECT_DEV_TEST_TOKEN", raising=False)
    target = host(password_env="CONNECT_DEV_TEST_TOKEN", password="inline")
    assert resolve_password(target).reveal() == "inline"


def test_inline_when_the_variable_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECT_DEV_TEST_TOKEN", "")
    target = host(password_env="CONNECT_DEV_TEST_TOKEN", password="inline")
    assert resolve_password(target).reveal() == "inline"


def test_inline_only() -> None:
    assert resolve_password(host(password="admin")).reveal() == "admin"


def test_injected_sources_are_tried_in_order() -> None:
    calls: list[str] = []

    class Source:
        def __init__(self, name: str, value: str | None) -> None:
            self.name = name
            self.value = value

        def lookup(self, target: HostConfig) -> Secret | None:
            calls.append(self.name)
            return Secret(self.value) if self.value is not None else None

    sources = [Source("keyring", None), Source("vault", "v"), Source("never", "n")]
    assert resolve_password(host(), sources).reveal() == "v"
    assert calls == ["keyring", "vault"]


def test_empty_source_list_finds_nothing() -> None:
    with pytest.raises(CredentialsError):
        resolve_password(host(password="admin"), [])


def test_missing_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONNECT_DEV_TEST_TOKEN", raising=False)

    with pytest.raises(CredentialsError) as info:
        resolve_password(host(password_env="CONNECT_DEV_TEST_TOKEN", name="dev-jira"))

    assert str(info.value) == (
        "host 'dev-jira': environment variable CONNECT_DEV_TEST_TOKEN is not set"
    )
    assert info.value.hint == (
        "export CONNECT_DEV_TEST_TOKEN=<API token> before `connect-dev up`, "
        "run `connect-dev login dev-jira` to keep it in the OS keychain, "
        "or set `password` in the [[hosts]] entry for a local host."
    )
    assert isinstance(info.value, DevloopError)


def test_nothing_configured() -> None:
    with pytest.raises(CredentialsError) as info:
        resolve_password(host(name="local"))

    assert str(info.value) == "host 'local': no password or API token configured"
    assert info.value.hint == (
        "Run `connect-dev login local` to keep an API token in the OS keychain, "
        'add `password_env = "VARIABLE"` to the [[hosts]] entry (Cloud: an API token '
        "from id.atlassian.com), or `password` for a local host."
    )


# --- connect-dev open --browser -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("browser", "why"),
    [
        (lambda url: False, "none is available here (set BROWSER to choose one)"),
        (lambda url: (_ for _ in ()).throw(webbrowser.Error("could not locate runnable browser")),
         "could not locate runnable browser"),
    ],
)  # fmt: skip
def test_open_says_when_no_browser_could_be_started(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    browser: Callable[[str], bool],
    why: str,
) -> None:
    from connect_devloop.commands import credentials as commands_credentials

    tenant = SimpleNamespace(addon_base_url="https://addon.example", client_key="ck")
    monkeypatch.setattr(commands_credentials, "_sign", lambda *a, **k: (tenant, "t.o.k"))
    monkeypatch.setattr(webbrowser, "open", browser)
    args = argparse.Namespace(path="/page", base_url=None, browser=True)
    assert commands_credentials.run_open(args) == 0
    out, err = capsys.readouterr()
    assert out == "https://addon.example/page?jwt=t.o.k\n"
    assert err == (
        f"connect-dev: no web browser could be started ({why}); open the URL above by hand.\n"
    )
