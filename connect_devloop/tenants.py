"""Tenants the add-on was installed for: ``clientKey`` → ``sharedSecret``, remembered from the
verified ``installed`` callbacks the proxy sees, so the proxy can check the JWTs hosts send and
``connect-dev token``/``open`` can sign requests as the host would.

Two files under the project's ``.connect-dev/``, both written atomically with mode 0600:

- ``tenants.json``: what each tenant is (clientKey, add-on key, product base URL, the add-on's
  public base URL, host name, times). Never a secret.
- ``tenant-secrets.json``: the sharedSecrets, only for machines without a usable OS keychain.
  Otherwise each secret is a keychain entry ``tenant <add-on key> <clientKey>`` (service
  ``connect-devloop``), and this file does not exist.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import DevloopError
from .keychain import Keychain, KeychainError, SystemKeychain, tenant_account
from .ledger import (
    StateFileError,
    UnchangedFile,
    ensure_state_dir,
    json_type,
    read_state_json,
)
from .secret import Secret

__all__ = ["SECRETS_FILE_NAME", "TENANTS_FILE_NAME", "Tenant", "TenantError", "TenantStore"]

logger = logging.getLogger(__name__)

TENANTS_FILE_NAME = "tenants.json"
SECRETS_FILE_NAME = "tenant-secrets.json"
_FORMAT_VERSION = 1
IN_KEYCHAIN = "keychain"
IN_FILE = "file"


class TenantError(DevloopError):
    """No stored tenant matches, or its secret cannot be read."""


@dataclass(frozen=True)
class Tenant:
    """One installation of the add-on on a site, as its verified ``installed`` callback said."""

    client_key: str
    addon_key: str
    base_url: str  # the product's base URL (payload ``baseUrl``)
    addon_base_url: str  # where the host reaches the add-on: the verified ``aud``
    host: str = ""  # the [[hosts]] name in connect-dev.toml, or the base URL
    product: str = ""
    installed_at: float = field(default_factory=time.time)
    uninstalled_at: float | None = None
    secret_in: str = IN_KEYCHAIN  # "keychain" or "file"

    @property
    def installed(self) -> bool:
        return self.uninstalled_at is None

    def describe(self) -> str:
        where = f"{self.host} " if self.host and self.host != self.base_url else ""
        return f"{self.client_key} ({where}{self.base_url})"


class TenantStore:
    """Reads and writes the tenant files of one project (``directory`` is its ``.connect-dev``).

    ``keychain=None`` means the system keychain; a keychain that turns out not to work sends the
    secrets to the 0600 file instead, once, with a warning in the log.
    """

    def __init__(self, directory: Path, keychain: Keychain | None = None) -> None:
        self.directory = directory
        self.path = directory / TENANTS_FILE_NAME
        self.secrets_path = directory / SECRETS_FILE_NAME
        self._keychain: Keychain = keychain if keychain is not None else SystemKeychain()
        self._lock = threading.Lock()
        # Parsed once per change on disk: `up` reads the index for every proxied JWT and
        # every install, and at 100 hosts re-parsing it each time was a third of the CPU.
        self._index: UnchangedFile[list[Tenant]] = UnchangedFile(self.path)
        self._secrets: UnchangedFile[dict[str, str]] = UnchangedFile(self.secrets_path)
        # Why the last secret went to the file instead of the keychain, if it did.
        self.keychain_problem: KeychainError | None = None

    # --- reading ----------------------------------------------------------------------------

    def tenants(self) -> list[Tenant]:
        """Every stored tenant, most recently installed first."""
        cached = self._index.get()
        if cached is not None:
            return list(cached)
        tenants = self._read_tenants()
        self._index.put(tenants)
        return list(tenants)

    def _read_tenants(self) -> list[Tenant]:
        data = _read_json(self.path, _INDEX_DAMAGED)
        entries = data.get("tenants", [])
        if not isinstance(entries, list):
            raise _damaged(self.path, f'"tenants" must be a list, found {json_type(entries)}')
        tenants = [_tenant(self.path, index, entry) for index, entry in enumerate(entries)]
        return sorted(tenants, key=lambda t: t.installed_at, reverse=True)

    def get(self, client_key: str, addon_key: str | None = None) -> Tenant | None:
        for tenant in self.tenants():
            if tenant.client_key == client_key and addon_key in (None, tenant.addon_key):
                return tenant
        return None

    def secret(self, tenant: Tenant) -> Secret:
        """The tenant's sharedSecret; ``TenantError`` when it cannot be read."""
        if tenant.secret_in == IN_FILE:
            value = self._file_secrets().get(_file_key(tenant))
            if isinstance(value, str) and value:
                return Secret(value)
            raise TenantError(
                f"the sharedSecret of tenant {tenant.client_key} is missing from "
                f"{self.secrets_path}",
                hint="Let the host install the add-on again (`connect-dev up`).",
            )
        try:
            secret = self._keychain.get(tenant_account(tenant.addon_key, tenant.client_key))
        except KeychainError as exc:
            raise TenantError(
                f"cannot read the sharedSecret of tenant {tenant.client_key}: {exc.message}",
                hint=exc.hint,
            ) from exc
        if secret is None:
            raise TenantError(
                f"the sharedSecret of tenant {tenant.client_key} is not in the keychain "
                f"({self._keychain.description}) any more",
                hint="Let the host install the add-on again (`connect-dev up`).",
            )
        return secret

    def select(
        self, selector: str | None = None, *, addon_key: str | None = None
    ) -> tuple[Tenant, Secret]:
        """The tenant ``connect-dev token`` signs for: ``selector`` is a clientKey, a host name
        or a product base URL; without one, the only tenant (of ``addon_key`` when given)."""
        tenants = self.tenants()
        if not tenants:
            raise TenantError(
                f"no tenant stored for this project ({self.path} has none)",
                hint="Run `connect-dev up` and let a host install the add-on: connect-dev "
                "remembers each tenant from its verified, signed `installed` callback "
                '(the descriptor needs "apiMigrations": {"signed-install": true}).',
            )
        if selector is not None:
            wanted = selector.rstrip("/")
            matches = [
                t for t in tenants if wanted in (t.client_key, t.host, t.base_url.rstrip("/"))
            ]
            if not matches:
                raise TenantError(
                    f"no stored tenant matches {selector!r}",
                    hint="Stored tenants: " + _listing(tenants),
                )
        else:
            matches = tenants
        if addon_key is not None and any(t.addon_key == addon_key for t in matches):
            matches = [t for t in matches if t.addon_key == addon_key]
        installed = [t for t in matches if t.installed] or matches
        if len({t.client_key for t in installed}) > 1:
            raise TenantError(
                f"{len(installed)} tenants are stored; say which one with --tenant",
                hint="Stored tenants: " + _listing(installed),
            )
        tenant = installed[0]
        return tenant, self.secret(tenant)

    # --- writing ----------------------------------------------------------------------------

    def remember(self, tenant: Tenant, secret: Secret) -> Tenant:
        """Store ``tenant`` and its ``secret`` (replacing an earlier installation's)."""
        return self.remember_all([(tenant, secret)])[0]

    def remember_all(self, installs: Sequence[tuple[Tenant, Secret]]) -> list[Tenant]:
        """``remember`` for each of ``installs`` in order, with one write of each file for all
        of them: 100 hosts installing at once cost two fsyncs, not two hundred (issue 9)."""
        with self._lock:
            file_secrets: dict[str, str] | None = None
            stored: list[Tenant] = []
            for tenant, secret in installs:
                if self._store_in_keychain(tenant, secret):
                    stored.append(replace(tenant, secret_in=IN_KEYCHAIN))
                    if file_secrets is None:
                        file_secrets = self._file_secrets()
                    file_secrets.pop(_file_key(tenant), None)
                    continue
                if file_secrets is None:
                    file_secrets = self._file_secrets()
                file_secrets[_file_key(tenant)] = secret.reveal()
                stored.append(replace(tenant, secret_in=IN_FILE))
            if file_secrets is not None and (file_secrets != self._file_secrets()):
                self._write_secrets(file_secrets)
            newest: dict[tuple[str, str], Tenant] = {}
            for tenant in stored:  # a tenant installed twice in one batch: the later one
                newest[(tenant.client_key, tenant.addon_key)] = tenant
            kept = [t for t in self.tenants() if (t.client_key, t.addon_key) not in newest]
            self._write_index([*reversed(newest.values()), *kept])
            return stored

    def mark_uninstalled(self, client_key: str, addon_key: str, at: float | None = None) -> None:
        """Note that the host uninstalled the add-on. The secret stays: add-ons usually keep
        the tenant too, so ``token`` still reaches them; ``logout --tenants`` removes it."""
        with self._lock:
            tenants = self.tenants()
            changed = [
                replace(t, uninstalled_at=at if at is not None else time.time())
                if (t.client_key, t.addon_key) == (client_key, addon_key)
                else t
                for t in tenants
            ]
            if changed != tenants:
                self._write_index(changed)

    def forget(self, tenants: Iterable[Tenant] | None = None) -> list[Tenant]:
        """Remove ``tenants`` (default: all) and their secrets; returns what was removed."""
        with self._lock:
            stored = self.tenants()
            doomed = stored if tenants is None else list(tenants)
            keys = {(t.client_key, t.addon_key) for t in doomed}
            for tenant in doomed:
                self._delete_secret(tenant)
            self._write_index([t for t in stored if (t.client_key, t.addon_key) not in keys])
            secrets = self._file_secrets()
            if not secrets and self.secrets_path.exists():
                self.secrets_path.unlink()
            return [t for t in stored if (t.client_key, t.addon_key) in keys]

    def _store_in_keychain(self, tenant: Tenant, secret: Secret) -> bool:
        """True when the keychain took the secret; otherwise it goes to the 0600 file."""
        try:
            self._keychain.set(tenant_account(tenant.addon_key, tenant.client_key), secret)
        except KeychainError as exc:
            # The caller learns it from `secret_in`; `up` reports it once as a warning event.
            logger.debug(
                "tenant %s: keeping its sharedSecret in %s (mode 0600): %s",
                tenant.client_key,
                self.secrets_path,
                exc.message,
            )
            self.keychain_problem = exc
            return False
        return True

    def _delete_secret(self, tenant: Tenant) -> None:
        if tenant.secret_in == IN_KEYCHAIN:
            try:
                self._keychain.delete(tenant_account(tenant.addon_key, tenant.client_key))
            except KeychainError as exc:
                logger.warning("tenant %s: %s", tenant.client_key, exc.message)
        self._drop_file_secret(tenant)

    def _file_secrets(self) -> dict[str, str]:
        """The secrets kept in the 0600 file, as a copy the caller may change."""
        cached = self._secrets.get()
        if cached is not None:
            return dict(cached)
        secrets = self._read_file_secrets()
        self._secrets.put(secrets)
        return dict(secrets)

    def _read_file_secrets(self) -> dict[str, str]:
        data = _read_json(self.secrets_path, _SECRETS_DAMAGED)
        secrets = data.get("secrets", {})
        if not isinstance(secrets, dict):
            raise _damaged(
                self.secrets_path,
                f'"secrets" must be an object, found {json_type(secrets)}',
                _SECRETS_DAMAGED,
            )
        for name, value in secrets.items():
            if not isinstance(value, str):
                raise _damaged(
                    self.secrets_path,
                    f'"secrets": "{name}" must be a string, found {json_type(value)}',
                    _SECRETS_DAMAGED,
                )
        return dict(secrets)

    def _drop_file_secret(self, tenant: Tenant) -> None:
        secrets = self._file_secrets()
        if secrets.pop(_file_key(tenant), None) is not None:
            self._write_secrets(secrets)

    def _write_secrets(self, secrets: dict[str, str]) -> None:
        _write_json(self.secrets_path, {"version": _FORMAT_VERSION, "secrets": secrets})
        self._secrets.put(dict(secrets))

    def _write_index(self, tenants: Sequence[Tenant]) -> None:
        _write_json(
            self.path,
            # vars(), not asdict(): the fields are plain values, and asdict deep-copies each.
            {"version": _FORMAT_VERSION, "tenants": [dict(vars(t)) for t in tenants]},
        )
        self._index.put(sorted(tenants, key=lambda t: t.installed_at, reverse=True))


def _file_key(tenant: Tenant) -> str:
    return tenant_account(tenant.addon_key, tenant.client_key)


def _listing(tenants: Sequence[Tenant]) -> str:
    return "; ".join(t.describe() for t in tenants)


_INDEX_DAMAGED = (
    "Fix it, or delete it: the next install through `connect-dev up` writes it again "
    "(until then `connect-dev token` knows no tenant)."
)
_SECRETS_DAMAGED = (
    "Fix it, or delete it: the next install through `connect-dev up` stores the secret again "
    "(until then `connect-dev token` cannot sign for the tenants whose secret was in it)."
)

# Each stored field and the JSON types it may have: a hand-edited `"client_key": null` is
# reported with its place, not carried into a token or a sort that then fails.
_TENANT_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "client_key": ((str,), "a string"),
    "addon_key": ((str,), "a string"),
    "base_url": ((str,), "a string"),
    "addon_base_url": ((str,), "a string"),
    "host": ((str,), "a string"),
    "product": ((str,), "a string"),
    "installed_at": ((int, float), "a number"),
    "uninstalled_at": ((int, float, type(None)), "a number or null"),
    "secret_in": ((str,), '"keychain" or "file"'),
}
_REQUIRED = {f.name for f in fields(Tenant) if f.default is f.default_factory is MISSING}


def _tenant(path: Path, index: int, entry: object) -> Tenant:
    where = f"tenants[{index}]"
    if not isinstance(entry, dict):
        raise _damaged(path, f"{where} must be an object, found {json_type(entry)}")
    missing = sorted(_REQUIRED - entry.keys())
    if missing:
        raise _damaged(path, f'{where}: "{missing[0]}" is missing')
    for name, (types, wanted) in _TENANT_FIELDS.items():
        if name not in entry:
            continue
        value = entry[name]
        bad_bool = isinstance(value, bool)
        bad_where = name == "secret_in" and value not in (IN_KEYCHAIN, IN_FILE)
        if not isinstance(value, types) or bad_bool or bad_where:
            found = json_type(value)
            if bad_where and isinstance(value, str):
                found = "another string"
            raise _damaged(path, f'{where}: "{name}" must be {wanted}, found {found}')
    # Keys a later version added are left out rather than the whole tenant.
    return Tenant(**{name: entry[name] for name in _TENANT_FIELDS if name in entry})


def _damaged(path: Path, reason: str, hint: str = _INDEX_DAMAGED) -> TenantError:
    return TenantError(f"{path}: damaged: {reason}", hint=hint)


def _read_json(path: Path, damaged_hint: str) -> dict[str, Any]:
    """The object in ``path`` ({} when there is no file). Anything else is an error: taken as
    empty, the next write would replace what the file holds."""
    try:
        data = read_state_json(path)
    except StateFileError as exc:
        if exc.damaged:
            raise _damaged(path, str(exc), damaged_hint) from exc
        raise TenantError(f"{path}: cannot read: {exc}", hint=exc.hint) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _damaged(path, f"expected a JSON object, found {json_type(data)}", damaged_hint)
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically; the file is 0600 from the moment it exists."""
    ensure_state_dir(path.parent, error=TenantError)
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TenantError(f"{path}: cannot write: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise TenantError(f"{path}: cannot write: {exc.strerror}") from exc
