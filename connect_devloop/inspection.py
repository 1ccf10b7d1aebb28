"""What the proxy learns from the Connect traffic it forwards: lifecycle callbacks and JWTs.

``ConnectInspector`` is the proxy's ``Inspector``. It only observes: every request is forwarded
unchanged and the add-on decides. For each request it returns a verdict (added to the ``request``
event as ``jwt``):

- ``installed``/``uninstalled`` callbacks (paths from the served descriptor's ``lifecycle``):
  the RS256 signature with the host's key (fetched by ``kid`` from the host's key server),
  ``exp``, ``aud`` against the add-on's public base URL, ``iss`` against the payload's
  ``clientKey``, and ``qsh``. Unsigned and HS256 (legacy) callbacks are flagged: Cloud requires
  signed installs. A ``lifecycle`` event reports each callback; a verified ``installed`` one
  stores the tenant's ``sharedSecret`` (``tenants.py``).
- every other request with a Connect JWT (``?jwt=`` or ``Authorization: JWT``): the HS256
  signature with the stored secret of its tenant, ``exp``, and ``qsh``. A qsh mismatch shows the
  canonical request the host signed next to the one the add-on will compute from the URL it
  receives. Context tokens (``qsh: "context-qsh"``) are recognised as such.

Every verdict that is not "verified" has its own sentence in ``reason``; docs/security.md lists
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import aiohttp

from . import jwt
from .config import is_loopback_url
from .errors import DevloopError
from .events import Event, Lifecycle, Warning
from .keychain import BACKEND_HINT, KeychainUnavailableError
from .secret import Secret
from .tenants import Tenant, TenantStore

if TYPE_CHECKING:
    from .config import Config, HostConfig
    from .proxy import AddonAnswer, ProxiedRequest

__all__ = [
    "PRODUCTION_KEYS_URL",
    "ConnectInspector",
    "KeyFetchError",
    "KeyFetcher",
    "Verdict",
    "fetch_public_key",
]

logger = logging.getLogger(__name__)

# Atlassian's production key server for install callbacks (PROTOCOL.md §4).
PRODUCTION_KEYS_URL = "https://connect-install-keys.atlassian.com"
# Both stay well inside the proxy's INSPECTION_TIMEOUT_SECONDS (5 s).
KEY_FETCH_TIMEOUT_S = 2.5
STORE_WAIT_S = 1.5
# How long a signed request waits for an `installed` callback of its tenant still being checked
# (hosts send `enabled` right after `installed` returns).
PENDING_INSTALL_WAIT_S = 3.0
INSTALL_EVENTS = ("installed", "uninstalled")
LIFECYCLE_EVENTS = ("installed", "uninstalled", "enabled", "disabled")
SIGNED_INSTALL = '"apiMigrations": {"signed-install": true}'
_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
# Up to this many query parameters, every subset is tried to explain a qsh mismatch (2^n hashes).
MAX_RECONSTRUCTED_PARAMS = 6

Verdict = dict[str, Any]
DescriptorSource = Callable[[], "bytes | Mapping[str, Any] | None"]


class KeyFetchError(DevloopError):
    """The host's install-signing key could not be fetched."""


class KeyFetcher(Protocol):
    def __call__(self, url: str) -> Awaitable[str]: ...


async def fetch_public_key(url: str) -> str:
    """GET a PEM public key from a key server (``<keys_url>/<kid>``)."""
    timeout = aiohttp.ClientTimeout(total=KEY_FETCH_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, allow_redirects=True) as response,
        ):
            text = await response.text(errors="replace")
            status = response.status
    except TimeoutError as exc:
        raise KeyFetchError(f"no answer within {KEY_FETCH_TIMEOUT_S:g} s") from exc
    except aiohttp.ClientError as exc:
        raise KeyFetchError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
    if status != 200:
        raise KeyFetchError(f"HTTP {status}")
    if "-----BEGIN PUBLIC KEY-----" not in text:
        raise KeyFetchError("the answer is not a PEM public key")
    return text


class _Failure(Exception):
    """Ends a check with a verdict that is not "verified"; ``details`` join the verdict."""

    def __init__(self, verdict: str, reason: str, hint: str | None = None, **details: Any) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason
        self.hint = hint
        self.details = details

    def to_verdict(self, token: str) -> Verdict:
        result = _failed(self.verdict, self.reason, self.hint, signature=_safe_alg(token))
        result.update(self.details)
        return result


class ConnectInspector:
    """The proxy's ``Inspector``: lifecycle verification, tenant secrets, JWT verdicts.

    ``descriptor`` returns the descriptor as it is served now (the proxy's rendered bytes, or a
    parsed document): its ``baseUrl`` is the public base URL and its ``lifecycle`` the paths to
    watch. ``emit`` receives ``lifecycle`` (and ``warning``) events.
    """

    def __init__(
        self,
        *,
        hosts: Sequence[HostConfig],
        addon_url: str,
        emit: Callable[[Event], None],
        descriptor: DescriptorSource,
        tenants: TenantStore,
        fetch_key: KeyFetcher = fetch_public_key,
        clock: Callable[[], float] = time.time,
        default_keys_url: str = PRODUCTION_KEYS_URL,
    ) -> None:
        self._hosts = list(hosts)
        self._addon_path = urlsplit(addon_url).path.rstrip("/")
        self._emit = emit
        self._descriptor_source = descriptor
        self._tenants = tenants
        self._fetch_key = fetch_key
        self._clock = clock
        self._default_keys_url = default_keys_url.rstrip("/")
        self._keys: dict[str, str] = {}
        self._secrets: dict[str, tuple[Tenant, Secret]] = {}
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._background: set[asyncio.Future[Any]] = set()
        # Tenants to store, written together by one writer (see _store_tenant).
        self._to_store: list[tuple[Tenant, Secret, asyncio.Future[Tenant]]] = []
        self._storing: asyncio.Task[None] | None = None
        self._parsed: tuple[object, dict[str, Any]] | None = None
        self._reported_file_fallback = False
        # clientKey -> verdict of its last `installed` callback when that was not genuine: the
        # tenant's new secret is then unknown, and a stored one is out of date.
        self._unverified_installs: dict[str, str] = {}

    @classmethod
    def for_config(
        cls, config: Config, emit: Callable[[Event], None], descriptor: DescriptorSource
    ) -> ConnectInspector:
        """The inspector ``up`` uses: tenants in the project's ``.connect-dev``."""
        return cls(
            hosts=config.hosts,
            addon_url=config.addon_url,
            emit=emit,
            descriptor=descriptor,
            tenants=TenantStore(config.ledger_path.parent),
        )

    # --- the Inspector protocol -------------------------------------------------------------

    def wants_body(self, method: str, path: str) -> bool:
        return self._lifecycle_event(method, path) is not None

    def wants_request(self, method: str, path: str, query: str, authorization: str | None) -> bool:
        """False for a request ``inspect`` would return None for at once, with no effect:
        one that is no lifecycle callback and carries no Connect JWT (most of an add-on's
        traffic: pages, scripts, styles), so the proxy starts no inspection for it. ``query``
        is the raw query; the test errs towards True (then ``inspect`` decides)."""
        if jwt.token_from_request(authorization, _NO_QUERY) is not None:
            return True
        if jwt.JWT_PARAM in query or ("%" in query and jwt.JWT_PARAM in unquote(unquote(query))):
            return True  # perhaps ?jwt= (the query is decoded twice before it is read)
        return self._lifecycle_event(method, path) is not None

    async def inspect(self, request: ProxiedRequest) -> Verdict | None:
        event = self._lifecycle_event(request.method, request.path)
        token = jwt.token_from_request(
            request.headers.get("Authorization"), _query_dict(request.query_string)
        )
        if event is not None:
            return await self._inspect_lifecycle(event, token, request)
        if token is None:
            return None
        return await self._verify_request(token, request)

    async def signing_secret(self, claims: Mapping[str, Any]) -> tuple[str, Secret]:
        """The tenant a token's claims name, and its sharedSecret, for re-signing a request
        as the host would (a replay); ``DevloopError`` with the reason when it is not known."""
        try:
            tenant_key, _, secret = await self._tenant_for(claims)
        except _Failure as failure:
            raise DevloopError(failure.reason, failure.hint) from None
        return tenant_key, secret

    # --- lifecycle callbacks ----------------------------------------------------------------

    async def _inspect_lifecycle(
        self, event: str, token: str | None, request: ProxiedRequest
    ) -> Verdict:
        payload = _json_object(request.body)
        client_key = str(payload.get("clientKey") or "")
        base_url = str(payload.get("baseUrl") or "")
        host = self._host_for(base_url)
        host_name = host.name if host is not None else (base_url or "unknown host")
        pending: asyncio.Future[None] | None = None
        answer: AddonAnswer | None = None
        if event == "installed" and client_key:
            pending = asyncio.get_running_loop().create_future()
            self._pending[client_key] = pending
        try:
            if event in INSTALL_EVENTS:
                verdict = await self._verify_install(event, token, request, payload, host)
            elif token is None:
                verdict = _failed(
                    "unsigned",
                    f"unsigned {event} callback: hosts sign it with the tenant's "
                    "sharedSecret (HS256)",
                    signature="unsigned",
                )
            else:
                verdict = await self._verify_request(token, request)
            # What the add-on answered decides whether the host keeps the install: a tenant
            # whose `installed` the add-on did not accept is not installed anywhere.
            answer = await request.answer if request.answer is not None else None
            accepted = answer is None or answer.accepted
            # A genuine install is remembered even when the add-on will reject it for a qsh it
            # computes from a rewritten URL: the secret is the host's, and `token` needs it.
            genuine = verdict["verified"] or verdict.get("signed_as_requested") is True
            if genuine and event == "installed" and not accepted:
                logger.debug("not storing tenant %s: the add-on answered %s", client_key, answer)
            elif genuine and event == "installed":
                self._unverified_installs.pop(client_key, None)
                await self._remember(payload, verdict, host_name)
            elif event == "installed" and client_key:
                self._unverified_installs[client_key] = str(verdict["verdict"])
                self._secrets.pop(client_key, None)
            elif verdict["verified"] and event == "uninstalled":
                self._in_background(
                    asyncio.to_thread(
                        self._tenants.mark_uninstalled,
                        client_key,
                        str(payload.get("key") or ""),
                        self._clock(),
                    )
                )
        finally:
            if pending is not None:
                pending.set_result(None)
                if self._pending.get(client_key) is pending:
                    del self._pending[client_key]
        verdict["lifecycle"] = event
        if answer is not None:
            verdict["addon_status"] = answer.status
            if answer.failure:
                verdict["addon_error"] = answer.failure
        self._emit(
            Lifecycle(
                host=host_name,
                event=event,
                client_key=client_key,
                verified=bool(verdict["verified"]),
                signature=str(verdict.get("signature", "")),
                verdict=str(verdict["verdict"]),
                reason=str(verdict.get("reason", "")),
                addon_status=answer.status if answer is not None else 0,
                addon_error=answer.failure if answer is not None else "",
            )
        )
        return verdict

    async def _verify_install(
        self,
        event: str,
        token: str | None,
        request: ProxiedRequest,
        payload: Mapping[str, Any],
        host: HostConfig | None,
    ) -> Verdict:
        if token is None:
            return _failed(
                "unsigned",
                f"unsigned {event} callback: Atlassian Cloud requires signed installs; add "
                f"{SIGNED_INSTALL} to the descriptor",
                signature="unsigned",
            )
        try:
            header = _header(token)
            algorithm = str(header.get("alg"))
            if algorithm == "HS256":
                raise _Failure(
                    "legacy signature",
                    f"{event} callback signed with HS256, the legacy scheme: Atlassian Cloud "
                    f"requires signed installs (RS256); add {SIGNED_INSTALL} to the descriptor",
                )
            if algorithm != "RS256":
                raise _Failure(
                    "wrong algorithm",
                    f"{event} callback signed with {algorithm}; hosts sign install callbacks "
                    "with RS256",
                )
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise _Failure(
                    "malformed", "the RS256 token has no kid header, so no key can verify it"
                )
            keys_url = self._keys_url(host)
            public_key = await self._public_key(keys_url, kid)
            claims = self._decode(
                token,
                lambda now: jwt.decode_rs256(token, public_key, now=now),
                bad_signature=f"signature does not verify with the host's install-signing key "
                f"{kid!r} from {keys_url}: the token was altered, or signed with another key",
                expired_advice="a replayed callback, or a clock that is wrong",
            )
            public_base = self._public_base(request)
            audience = _audience(claims)
            if not audience:
                raise _Failure(
                    "wrong audience",
                    f"aud is missing; it must be the add-on's public base URL {public_base!r}",
                )
            if audience[0].rstrip("/") != public_base:
                raise _Failure(
                    "wrong audience",
                    f"aud is {audience[0]!r}, but the add-on's public base URL is "
                    f"{public_base!r}: the host installed the add-on from another URL "
                    "(an old tunnel URL?)",
                )
            client_key = str(payload.get("clientKey") or "")
            if claims.get("iss") != client_key:
                raise _Failure(
                    "wrong issuer",
                    f"iss {claims.get('iss')!r} does not match the payload's clientKey "
                    f"{client_key!r}",
                )
            try:
                qsh = self._check_qsh(claims, request, allow_context=False)
            except _Failure as failure:
                failure.details["aud"] = audience[0]
                raise
        except _Failure as failure:
            return failure.to_verdict(token)
        return {
            "verified": True,
            "verdict": "verified",
            "signature": "RS256",
            "kid": kid,
            "iss": claims.get("iss"),
            "aud": audience[0],
            **qsh,
        }

    async def _remember(self, payload: Mapping[str, Any], verdict: Verdict, host: str) -> None:
        client_key = str(payload.get("clientKey") or "")
        shared_secret = payload.get("sharedSecret")
        if not client_key or not isinstance(shared_secret, str) or not shared_secret:
            return  # authentication "none": nothing to remember
        tenant = Tenant(
            client_key=client_key,
            addon_key=str(payload.get("key") or self._descriptor().get("key") or ""),
            base_url=str(payload.get("baseUrl") or ""),
            addon_base_url=str(verdict.get("aud") or "").rstrip("/"),
            host=host,
            product=str(payload.get("productType") or ""),
            installed_at=self._clock(),
        )
        secret = Secret(shared_secret)
        self._secrets[client_key] = (tenant, secret)
        store = self._store_tenant(tenant, secret)
        store.add_done_callback(self._report_file_fallback)
        self._in_background(store)
        # Wait a little so `connect-dev token` works as soon as the event is out; a keychain
        # that prompts for its password must not hold the event up for long.
        with contextlib.suppress(TimeoutError, DevloopError):
            await asyncio.wait_for(asyncio.shield(store), STORE_WAIT_S)

    def _store_tenant(self, tenant: Tenant, secret: Secret) -> asyncio.Future[Tenant]:
        """Store a tenant in the background. Group commit, as the ledger's: what arrives while
        a write is on the disk goes into the next one, so 100 hosts installing at once cost a
        few writes of each file instead of 100 in a row (most of a 100-host start, issue 9)."""
        stored: asyncio.Future[Tenant] = asyncio.get_running_loop().create_future()
        self._to_store.append((tenant, secret, stored))
        if self._storing is None:
            self._storing = asyncio.create_task(self._store_pending(), name="tenant writes")
        return stored

    async def _store_pending(self) -> None:
        batch: list[tuple[Tenant, Secret, asyncio.Future[Tenant]]] = []
        try:
            while self._to_store:
                batch, self._to_store = self._to_store, []
                installs = [(tenant, secret) for tenant, secret, _ in batch]
                try:
                    stored = await asyncio.to_thread(self._tenants.remember_all, installs)
                except Exception as exc:
                    for *_, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for (*_, done), tenant in zip(batch, stored, strict=True):
                        if not done.done():
                            done.set_result(tenant)
        finally:
            self._storing = None
            for *_, done in (*batch, *self._to_store):  # cancelled: nobody waits for ever
                done.cancel()

    # --- signed requests --------------------------------------------------------------------

    async def _verify_request(self, token: str, request: ProxiedRequest) -> Verdict:
        try:
            algorithm = _alg(token)
            if algorithm != "HS256":
                raise _Failure(
                    "wrong algorithm",
                    f"the token is signed with {algorithm}; hosts sign requests to the add-on "
                    "with HS256",
                )
            unverified = _unverified_claims(token)
            tenant_key, tenant, secret = await self._tenant_for(unverified)
            claims = self._decode(
                token,
                lambda now: jwt.decode_hs256(token, secret.reveal(), now=now),
                bad_signature=f"signature does not verify with the sharedSecret of tenant "
                f"{tenant_key!r}: the token was altered, or signed with an older secret "
                "(every install issues a new one)",
                expired_advice="the host signs for 3 minutes: reload the page or sign again",
            )
            audience = _audience(claims)
            public_base = self._public_base(request)
            if audience and audience[0].rstrip("/") not in (tenant_key, public_base):
                raise _Failure(
                    "wrong audience",
                    f"aud is {audience[0]!r}; add-ons take aud as the tenant's clientKey, and "
                    f"this token's tenant is {tenant_key!r}",
                )
            qsh = self._check_qsh(claims, request, allow_context=True)
        except _Failure as failure:
            verdict = failure.to_verdict(token)
            with contextlib.suppress(DevloopError):
                verdict.setdefault("iss", jwt.unverified_claims(token).get("iss"))
            return verdict
        verdict = {
            "verified": True,
            "verdict": "verified",
            "signature": "HS256",
            "iss": claims.get("iss"),
            "tenant": tenant_key,
            "host": tenant.host,
            "expires_in": round(float(claims["exp"]) - self._clock()),
            **qsh,
        }
        if "sub" in claims:
            verdict["sub"] = claims["sub"]
        return verdict

    async def _tenant_for(self, claims: Mapping[str, Any]) -> tuple[str, Tenant, Secret]:
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise _Failure("malformed", "the token has no iss claim, so its tenant is unknown")
        # Session tokens an add-on issues itself carry the tenant in aud (as ACE reads them).
        candidates = [iss, *[a for a in _audience(claims)[:1] if a != iss]]
        for key in candidates:
            if key in self._unverified_installs:
                raise _Failure(
                    "unknown tenant",
                    f"the last installed callback of clientKey {key!r} was not verified "
                    f"({self._unverified_installs[key]}), so its new sharedSecret is not known",
                    hint='Use signed installs ("apiMigrations": {"signed-install": true}) so '
                    "connect-dev can check tokens.",
                )
            found = await self._tenant_secret(key)
            if found is not None:
                return key, *found
        raise _Failure(
            "unknown tenant",
            f"no sharedSecret is stored for clientKey {iss!r}: connect-dev remembers a tenant "
            "when it proxies its verified, signed installed callback",
            hint="Reinstall through `connect-dev up` (save the descriptor) to store it.",
        )

    async def _tenant_secret(self, client_key: str) -> tuple[Tenant, Secret] | None:
        pending = self._pending.get(client_key)
        if pending is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending), PENDING_INSTALL_WAIT_S)
        if client_key in self._secrets:
            return self._secrets[client_key]
        addon_key = self._descriptor().get("key")
        try:
            found = await asyncio.to_thread(
                self._load_tenant, client_key, addon_key if isinstance(addon_key, str) else None
            )
        except DevloopError as exc:
            logger.warning("tenant %s: %s", client_key, exc.message)
            return None
        if found is not None:
            self._secrets[client_key] = found
        return found

    def _load_tenant(self, client_key: str, addon_key: str | None) -> tuple[Tenant, Secret] | None:
        tenant = self._tenants.get(client_key, addon_key) or self._tenants.get(client_key)
        if tenant is None:
            return None
        return tenant, self._tenants.secret(tenant)

    # --- shared checks ----------------------------------------------------------------------

    def _decode(
        self,
        token: str,
        decode: Callable[[float], dict[str, Any]],
        *,
        bad_signature: str,
        expired_advice: str,
    ) -> dict[str, Any]:
        now = self._clock()
        try:
            return decode(now)
        except jwt.JwtVerificationError as exc:
            if exc.reason == "bad signature":
                raise _Failure("bad signature", bad_signature) from exc
            if exc.reason == "expired":
                exp = _unverified_claims(token).get("exp")
                raise _Failure("expired", _expired_text(exp, now, expired_advice)) from exc
            raise _Failure(exc.reason, exc.message, exc.hint) from exc

    def _check_qsh(
        self, claims: Mapping[str, Any], request: ProxiedRequest, *, allow_context: bool
    ) -> dict[str, Any]:
        qsh = claims.get("qsh")
        if qsh is None:
            raise _Failure(
                "missing qsh",
                "the token has no qsh claim: add-ons reject it unless the route skips the "
                "qsh check",
            )
        if qsh == jwt.CONTEXT_QSH:
            if allow_context:
                return {"qsh": jwt.CONTEXT_QSH, "context_token": True}
            raise _Failure(
                "context qsh",
                "a context token (qsh 'context-qsh') is not valid for a lifecycle callback",
            )
        public_path = urlsplit(self._public_base(request)).path
        raw_path = request.raw_path.split("?", 1)[0]
        received = jwt.canonical_request(
            request.method, self._addon_path + raw_path, request.query_string, public_path
        )
        expected = jwt.query_string_hash(received)
        if qsh == expected:
            return {"qsh": qsh}
        signed = _reconstruct_signed(
            str(qsh), request.method, raw_path, request.query_string, public_path, self._addon_path
        )
        # The host signed exactly the URL it requested: the token is genuine, and only the
        # add-on's view of the URL differs.
        as_requested = jwt.canonical_request(
            request.method, raw_path, request.query_string, public_path
        )
        if signed is not None:
            reason = (
                f"qsh mismatch: the host signed {signed!r}, but the add-on will compute "
                f"{received!r} from the URL it receives"
            )
        else:
            reason = (
                "qsh mismatch: the token was signed for another request; the add-on will "
                f"compute {received!r} from the URL it receives"
            )
        raise _Failure(
            "qsh mismatch",
            reason,
            "The add-on hashes the method, its path minus its own base URL's path, and the "
            "query. It must see the path the host signed: check [addon] url in connect-dev.toml "
            "and any proxy in front of the add-on that rewrites paths.",
            qsh=str(qsh),
            qsh_expected=expected,
            canonical_signed=signed,
            canonical_received=received,
            signed_as_requested=signed == as_requested,
        )

    # --- context ----------------------------------------------------------------------------

    def _descriptor(self) -> dict[str, Any]:
        source = self._descriptor_source()
        if source is None:
            return {}
        if isinstance(source, Mapping):
            return dict(source)
        if self._parsed is not None and self._parsed[0] is source:
            return self._parsed[1]
        try:
            document = json.loads(source)
        except ValueError:
            document = {}
        parsed = document if isinstance(document, dict) else {}
        self._parsed = (source, parsed)
        return parsed

    def _lifecycle_event(self, method: str, path: str) -> str | None:
        if method.upper() != "POST":
            return None
        document = self._descriptor()
        lifecycle = document.get("lifecycle")
        if not isinstance(lifecycle, dict):
            return None
        base_path = urlsplit(str(document.get("baseUrl") or "")).path
        received = jwt.canonical_path(path, base_path)
        for event in LIFECYCLE_EVENTS:
            target = lifecycle.get(event)
            if isinstance(target, str) and jwt.canonical_path(target.split("?")[0]) == received:
                return event
        return None

    def _public_base(self, request: ProxiedRequest) -> str:
        base = self._descriptor().get("baseUrl")
        return str(base if isinstance(base, str) and base else request.public_url).rstrip("/")

    def _host_for(self, base_url: str) -> HostConfig | None:
        if not base_url:
            return None
        wanted = _normal_url(base_url)
        for host in self._hosts:
            if _normal_url(host.url) == wanted:
                return host
        origin = _origin(base_url)
        same_origin = [host for host in self._hosts if _origin(host.url) == origin]
        return same_origin[0] if len(same_origin) == 1 else None

    def _keys_url(self, host: HostConfig | None) -> str:
        if host is None:
            # Never a key server named by the payload: anyone who can reach the tunnel could
            # then make the proxy fetch from any address (even this machine's own ports).
            return self._default_keys_url
        if host.keys_url:
            return host.keys_url.rstrip("/")
        if is_loopback_url(host.url):
            # The emulated host (and any local stand-in) publishes its keys at {origin}/keys.
            return f"{_origin(host.url)}/keys"
        return self._default_keys_url

    async def _public_key(self, keys_url: str, kid: str) -> str:
        url = f"{keys_url}/{quote(kid, safe='')}"
        if url in self._keys:
            return self._keys[url]
        try:
            key = await self._fetch_key(url)
        except KeyFetchError as exc:
            raise _Failure(
                "key unavailable",
                f"could not fetch the install-signing key {kid!r} from {keys_url}: {exc.message}",
                hint="Set keys_url in this host's [[hosts]] entry if it publishes its keys "
                "elsewhere.",
            ) from exc
        self._keys[url] = key
        return key

    def _report_file_fallback(self, store: asyncio.Future[Tenant]) -> None:
        if store.cancelled() or store.exception() is not None or self._reported_file_fallback:
            return
        problem = self._tenants.keychain_problem
        if store.result().secret_in == "file" and problem is not None:
            self._reported_file_fallback = True
            unavailable = isinstance(problem, KeychainUnavailableError)
            self._emit(
                Warning(
                    message=f"tenant secrets are kept in {self._tenants.secrets_path} (mode "
                    f"0600): {problem.message}",
                    hint=f"To keep them in the OS keychain instead, {BACKEND_HINT}."
                    if unavailable
                    else problem.hint,
                )
            )

    def _in_background(self, awaitable: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(awaitable)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, DevloopError):
            self._emit(Warning(message=f"tenant store: {error.message}", hint=error.hint))
        elif error is not None:
            logger.error("tenant store failed", exc_info=error)


def _failed(verdict: str, reason: str, hint: str | None = None, *, signature: str = "") -> Verdict:
    result: Verdict = {"verified": False, "verdict": verdict, "reason": reason}
    if signature:
        result["signature"] = signature
    if hint:
        result["hint"] = hint
    return result


def _reconstruct_signed(
    qsh: str, method: str, raw_path: str, query: str, public_path: str, addon_path: str
) -> str | None:
    """The canonical request whose hash is ``qsh``, among the usual suspects: the path with and
    without the base paths, the query or part of it (something added parameters), any method."""
    methods = dict.fromkeys([method.upper(), *_METHODS])
    paths = [(raw_path, public_path), (addon_path + raw_path, public_path), (raw_path, "")]
    pairs = [p for p in parse_qsl(query, keep_blank_values=True) if p[0] != jwt.JWT_PARAM]
    if len(pairs) <= MAX_RECONSTRUCTED_PARAMS:
        queries = [
            [pair for bit, pair in enumerate(pairs) if mask >> bit & 1]
            for mask in range(2 ** len(pairs) - 1, -1, -1)
        ]
    else:
        queries = [pairs, []]
    for candidate_method in methods:
        for path, base in paths:
            for candidate_query in queries:
                canonical = jwt.canonical_request(candidate_method, path, candidate_query, base)
                if jwt.query_string_hash(canonical) == qsh:
                    return canonical
    return None


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.unverified_header(token)
    except jwt.JwtVerificationError as exc:
        raise _Failure("malformed", f"not a JWT: {_malformed_detail(exc)}") from exc


def _alg(token: str) -> str:
    return str(_header(token).get("alg"))


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        return jwt.unverified_claims(token)
    except jwt.JwtVerificationError as exc:
        raise _Failure("malformed", f"not a JWT: {_malformed_detail(exc)}") from exc


def _malformed_detail(exc: jwt.JwtVerificationError) -> str:
    detail = exc.message.removeprefix("JWT rejected: ").removeprefix("malformed token ")
    return detail.removeprefix("(").removesuffix(")")


def _safe_alg(token: str) -> str:
    try:
        return str(jwt.unverified_header(token).get("alg"))
    except jwt.JwtVerificationError:
        return ""


def _expired_text(exp: object, now: float, advice: str) -> str:
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return f"the token has expired: {advice}"
    ago = max(0, round(now - exp))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    return f"the token expired {ago} s ago (exp {stamp}): {advice}"


def _audience(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [str(item) for item in aud]
    return []


_NO_QUERY: Mapping[str, str] = {}


def _query_dict(query_string: str) -> dict[str, str]:
    return dict(parse_qsl(query_string, keep_blank_values=True))


def _json_object(body: bytes | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _normal_url(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"
