"""The tenant store: metadata in tenants.json (never a secret), secrets in the keychain or, with
no keychain, in a 0600 file; selection for `connect-dev token`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from connect_devloop.keychain import MemoryKeychain, SystemKeychain
from connect_devloop.secret import Secret
from connect_devloop.tenants import Tenant, TenantError, TenantStore

from .keyrings import MemoryKeyring, memory_keyring

__all__ = ["memory_keyring"]

SECRET = "tenant-shared-secret-0123456789abcdef"


def tenant(client_key: str = "client-1", **changes: object) -> Tenant:
    fields: dict[str, object] = {
        "client_key": client_key,
        "addon_key": "my-addon",
        "base_url": "https://site.atlassian.net",
        "addon_base_url": "https://tunnel.example.com",
        "host": "dev-jira",
        "product": "jira",
        "installed_at": 1000.0,
    }
    fields.update(changes)
    return Tenant(**fields)  # type: ignore[arg-type]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_go_to_the_keychain_and_the_index_holds_none(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    store = TenantStore(tmp_path / ".connect-dev")
    stored = store.remember(tenant(), Secret(SECRET))
    assert stored.secret_in == "keychain"
    assert memory_keyring.entries == {("connect-devloop", "tenant my-addon client-1"): SECRET}
    assert SECRET not in store.path.read_text(encoding="utf-8")
    assert mode(store.path) == 0o600
    assert not store.secrets_path.exists()
    assert store.tenants() == [stored]
    assert store.secret(stored) == Secret(SECRET)
    assert json.loads(store.path.read_text(encoding="utf-8"))["tenants"][0] == {
        "client_key": "client-1",
        "addon_key": "my-addon",
        "base_url": "https://site.atlassian.net",
        "addon_base_url": "https://tunnel.example.com",
        "host": "dev-jira",
        "product": "jira",
        "installed_at": 1000.0,
        "uninstalled_at": None,
        "secret_in": "keychain",
    }


def test_without_a_keychain_secrets_go_to_a_0600_file(tmp_path: Path) -> None:
    keyring.set_keyring(fail.Keyring())
    store = TenantStore(tmp_path / ".connect-dev")
    stored = store.remember(tenant(), Secret(SECRET))
    assert stored.secret_in == "file"
    assert store.keychain_problem is not None
    assert SECRET not in store.path.read_text(encoding="utf-8")
    assert mode(store.secrets_path) == 0o600
    assert mode(store.path) == 0o600
    assert json.loads(store.secrets_path.read_text(encoding="utf-8")) == {
        "version": 1,
        "secrets": {"tenant my-addon client-1": SECRET},
    }
    assert store.secret(stored) == Secret(SECRET)
    assert store.forget() == [stored]
    assert not store.secrets_path.exists()
    assert store.tenants() == []


def test_a_reinstall_replaces_the_secret_and_moves_it_to_the_keychain(tmp_path: Path) -> None:
    keyring.set_keyring(fail.Keyring())
    store = TenantStore(tmp_path)
    store.remember(tenant(), Secret("old"))
    keyring.set_keyring(MemoryKeyring())
    stored = store.remember(tenant(installed_at=2000.0), Secret("new"))
    assert stored.secret_in == "keychain"
    assert [t.installed_at for t in store.tenants()] == [2000.0]
    assert store.secret(stored) == Secret("new")
    assert json.loads(store.secrets_path.read_text(encoding="utf-8"))["secrets"] == {}


def test_uninstall_is_noted_and_the_secret_kept(tmp_path: Path) -> None:
    store = TenantStore(tmp_path, MemoryKeychain())
    store.remember(tenant(), Secret(SECRET))
    store.mark_uninstalled("client-1", "my-addon", at=3000.0)
    (found,) = store.tenants()
    assert found.uninstalled_at == 3000.0
    assert not found.installed
    assert store.secret(found) == Secret(SECRET)


def test_select_the_only_tenant_or_by_client_key_host_or_url(tmp_path: Path) -> None:
    store = TenantStore(tmp_path, MemoryKeychain())
    with pytest.raises(TenantError) as empty:
        store.select()
    assert empty.value.message == f"no tenant stored for this project ({store.path} has none)"
    store.remember(tenant(), Secret("one"))
    assert store.select() == (store.tenants()[0], Secret("one"))
    store.remember(
        tenant("client-2", host="dev-wiki", base_url="https://site.atlassian.net/wiki",
               installed_at=2000.0),
        Secret("two"),
    )  # fmt: skip
    with pytest.raises(TenantError) as several:
        store.select()
    assert several.value.message == "2 tenants are stored; say which one with --tenant"
    assert several.value.hint == (
        "Stored tenants: client-2 (dev-wiki https://site.atlassian.net/wiki); "
        "client-1 (dev-jira https://site.atlassian.net)"
    )
    assert store.select("client-1")[1] == Secret("one")
    assert store.select("dev-wiki")[1] == Secret("two")
    assert store.select("https://site.atlassian.net/wiki/")[1] == Secret("two")
    with pytest.raises(TenantError) as unknown:
        store.select("nobody")
    assert unknown.value.message == "no stored tenant matches 'nobody'"


def test_select_prefers_installed_tenants_of_the_current_add_on(tmp_path: Path) -> None:
    store = TenantStore(tmp_path, MemoryKeychain())
    store.remember(tenant("old", installed_at=1.0), Secret("old"))
    store.mark_uninstalled("old", "my-addon")
    store.remember(tenant("other-addon", addon_key="renamed", installed_at=2.0), Secret("x"))
    store.remember(tenant("current", installed_at=3.0), Secret("current"))
    assert store.select(addon_key="my-addon")[0].client_key == "current"


def test_a_secret_missing_from_the_keychain_is_explained(tmp_path: Path) -> None:
    keychain = MemoryKeychain()
    store = TenantStore(tmp_path, keychain)
    stored = store.remember(tenant(), Secret(SECRET))
    keychain.entries.clear()
    with pytest.raises(TenantError) as caught:
        store.secret(stored)
    assert caught.value.message == (
        "the sharedSecret of tenant client-1 is not in the keychain (in memory) any more"
    )


def test_a_damaged_index_is_reported_not_raised_as_json_error(tmp_path: Path) -> None:
    store = TenantStore(tmp_path, SystemKeychain())
    store.path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TenantError) as caught:
        store.tenants()
    assert caught.value.message == (
        f"{store.path}: damaged: not JSON (line 1, column 2: Expecting property name enclosed "
        "in double quotes)"
    )
    assert caught.value.hint == INDEX_HINT


INDEX_HINT = (
    "Fix it, or delete it: the next install through `connect-dev up` writes it again "
    "(until then `connect-dev token` knows no tenant)."
)
SECRETS_HINT = (
    "Fix it, or delete it: the next install through `connect-dev up` stores the secret again "
    "(until then `connect-dev token` cannot sign for the tenants whose secret was in it)."
)
VALID = {
    "client_key": "c",
    "addon_key": "a",
    "base_url": "https://s.atlassian.net",
    "addon_base_url": "https://t.example.com",
}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "expected a JSON object, found a list"),
        (None, "expected a JSON object, found null"),
        ({"tenants": {}}, '"tenants" must be a list, found an object'),
        ({"tenants": [[]]}, "tenants[0] must be an object, found a list"),
        ({"tenants": [{**VALID, "client_key": None}]}, 'tenants[0]: "client_key" must be a '
         "string, found null"),
        ({"tenants": [{**VALID, "base_url": 5}]}, 'tenants[0]: "base_url" must be a string, '
         "found a number"),
        ({"tenants": [{**VALID, "installed_at": "x"}]}, 'tenants[0]: "installed_at" must be a '
         "number, found a string"),
        ({"tenants": [{**VALID, "secret_in": "disk"}]}, 'tenants[0]: "secret_in" must be '
         '"keychain" or "file", found another string'),
        ({"tenants": [{"client_key": "c"}]}, 'tenants[0]: "addon_base_url" is missing'),
    ],
)  # fmt: skip
def test_a_tenant_index_of_the_wrong_shape_is_damaged_and_kept(
    tmp_path: Path, document: object, reason: str
) -> None:
    store = TenantStore(tmp_path, MemoryKeychain())
    text = json.dumps(document)
    store.path.write_text(text, encoding="utf-8")
    with pytest.raises(TenantError) as caught:
        store.remember(tenant(), Secret(SECRET))
    assert caught.value.message == f"{store.path}: damaged: {reason}"
    assert caught.value.hint == INDEX_HINT
    assert store.path.read_text(encoding="utf-8") == text


def test_unknown_tenant_fields_are_ignored_not_the_tenant(tmp_path: Path) -> None:
    store = TenantStore(tmp_path, MemoryKeychain())
    store.path.write_text(json.dumps({"tenants": [{**VALID, "later": 1}]}), encoding="utf-8")
    assert [t.client_key for t in store.tenants()] == ["c"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[" * 100_000, "nested too deeply to be connect-dev's JSON"),
        (b'{"secrets": {"x": "\xff"}}', "not UTF-8 text (byte 20)"),
        (b'{"secrets": []}', '"secrets" must be an object, found a list'),
        (b'{"secrets": {"tenant a c": 5}}', '"secrets": "tenant a c" must be a string, found a '
         "number"),
    ],
)  # fmt: skip
def test_a_damaged_secrets_file_is_reported_and_not_overwritten(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    keyring.set_keyring(fail.Keyring())
    store = TenantStore(tmp_path, SystemKeychain())
    store.secrets_path.write_bytes(content)
    with pytest.raises(TenantError) as caught:
        store.remember(tenant(), Secret(SECRET))
    assert caught.value.message == f"{store.secrets_path}: damaged: {reason}"
    assert caught.value.hint == SECRETS_HINT
    assert store.secrets_path.read_bytes() == content


def test_a_huge_index_is_refused(tmp_path: Path) -> None:
    store = TenantStore(tmp_path, MemoryKeychain())
    with store.path.open("wb") as handle:
        handle.truncate(20 * 1000 * 1000)
    with pytest.raises(TenantError) as caught:
        store.tenants()
    assert caught.value.message == f"{store.path}: damaged: larger than 10 MB (20 MB)"


def test_the_tenant_directory_is_created_0700(tmp_path: Path) -> None:
    store = TenantStore(tmp_path / ".connect-dev", MemoryKeychain())
    store.remember(tenant(), Secret(SECRET))
    assert mode(tmp_path / ".connect-dev") == 0o700


def test_one_store_sees_what_another_wrote(tmp_path: Path) -> None:
    """Each process has its own store (`up`, `token`, `logout`): a cached index must never
    hide what another one wrote, tenants and file secrets alike."""
    keyring.set_keyring(fail.Keyring())
    directory = tmp_path / ".connect-dev"
    up, token = TenantStore(directory), TenantStore(directory)
    first = up.remember(tenant("client-1"), Secret(SECRET))
    assert token.tenants() == [first]
    second = up.remember(tenant("client-2", installed_at=2000.0), Secret(SECRET + "2"))
    assert token.tenants() == [second, first]
    assert token.secret(second) == Secret(SECRET + "2")
    token.forget([first])
    assert up.tenants() == [second]
    with pytest.raises(TenantError):
        up.secret(first)


def test_remember_all_writes_each_file_once_for_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 hosts installing at once: one index write and one secrets write, not one each."""
    keyring.set_keyring(fail.Keyring())
    store = TenantStore(tmp_path)
    store.remember(tenant("earlier", installed_at=1.0), Secret("earlier"))
    written: list[str] = []
    import connect_devloop.tenants as tenants_module

    real_write = tenants_module._write_json
    monkeypatch.setattr(
        tenants_module,
        "_write_json",
        lambda path, data: (written.append(path.name), real_write(path, data))[1],
    )
    batch = [(tenant(f"client-{n}", installed_at=10.0 + n), Secret(f"s{n}")) for n in range(5)]
    # The same tenant twice in one batch (a quick re-install): the later one is kept.
    batch.append((tenant("client-0", installed_at=20.0), Secret("s0-again")))
    stored = store.remember_all(batch)
    assert sorted(written) == ["tenant-secrets.json", "tenants.json"]
    assert [t.client_key for t in stored] == [t.client_key for t, _ in batch]
    assert [t.client_key for t in store.tenants()] == [
        "client-0", "client-4", "client-3", "client-2", "client-1", "earlier"
    ]  # fmt: skip
    assert store.tenants()[0].installed_at == 20.0
    assert store.secret(store.tenants()[0]) == Secret("s0-again")
    assert store.secret(store.tenants()[-1]) == Secret("earlier")
