"""Who is calling the site's REST API, and may they: checked as Atlassian Cloud checks it.

An **app call** carries a Connect JWT (``Authorization: JWT <token>`` or ``?jwt=``). As Cloud
does (atlassian-jwt's ``AbstractJwtAuthenticator``, and the Connect plugin's ``ApiScopingFilter``):

1. ``iss`` names the app by its **key** (atlassian-connect-express signs with
   ``iss = clientInfo.key`` and ``aud = [clientKey]``); an issuer that is not an installed,
   enabled JWT app gets 401 ``Your presented credentials do not provide access to this
   resource.``
2. The token is HS256, signed with that installation's current ``sharedSecret``; ``exp`` and
   ``iat`` are required, and ``exp`` gets 30 s of leeway. A failure is 401 with atlassian-jwt's
   words (``Expired at ... and time is now ... (30 seconds leeway is allowed)``).
3. ``qsh`` must be the hash of the request as the site received it: the method, the path
   relative to the product base URL (without the context path), the query without ``jwt``
   (PROTOCOL.md §5). A mismatch is 401 ``Expecting claim 'qsh' to have value '<the site's>'
   but instead it has the value '<the app's>'``.
4. The route's scope (``READ``, ``WRITE``, ``DELETE``, ``PROJECT_ADMIN``, ``SPACE_ADMIN``,
   ``ADMIN``) must be among the descriptor's ``scopes`` or implied by one of them (each implies
   those before it, except that ``SPACE_ADMIN`` does not imply ``PROJECT_ADMIN``). Else 403
   ``Request not in an authorized API scope``, followed by what the route requires.

A **user call** is HTTP Basic auth as a site account, or the site's session cookie
(``SESSION_COOKIE``, from ``POST <base>/rest/auth/1/session`` or ``start_session``); no scope
applies. A user call with the ``AP-Client-Key: <app key>`` header is what ``AP.request`` sends
from an app's iframe: it acts as the user, with the scopes of that app, as Cloud does.

Every call gets a ``Verdict`` that the site records (``HostRecord.rest_calls``): for a refusal
it says why, and for a qsh mismatch it shows the canonical request the site hashed beside the
app's qsh, and which usual mistake (context path, query left out or unsorted, method) the app's
qsh matches when one does.

Cloud sends these refusals as servlet error pages; the emulator answers them in the JSON error
shape of the API that was called, with the same message (the emulator's choice).
"""

from __future__ import annotations

import logging
import secrets
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import jwt as pyjwt
from aiohttp import web

from .. import jwt
from .basic_auth import basic_credentials, password_matches
from .lifecycle import Installation

if TYPE_CHECKING:
    from .product import User
    from .types import Host

__all__ = [
    "AP_CLIENT_KEY_HEADER",
    "BAD_CREDENTIALS",
    "EXP_LEEWAY_S",
    "NOT_AUTHENTICATED",
    "SCOPES",
    "SESSION_COOKIE",
    "Caller",
    "Refusal",
    "Sessions",
    "Verdict",
    "authenticate",
    "check_scope",
    "declared_scopes",
    "diagnose_qsh",
    "scope_granted",
    "session_routes",
    "session_user",
    "start_session",
]

logger = logging.getLogger(__name__)

# The emulator's choice of cookie name: Cloud's own session cookie.
SESSION_COOKIE: Final = "cloud.session.token"
# What the product's AP.request bridge adds to a browser's REST call made for an app.
AP_CLIENT_KEY_HEADER: Final = "AP-Client-Key"
# atlassian-jwt's TIME_CLAIM_LEEWAY_SECONDS.
EXP_LEEWAY_S: Final = 30
# Connect's scopes in the order of ScopeName: each implies the ones before it, except that
# SPACE_ADMIN does not imply PROJECT_ADMIN.
SCOPES: Final = ("READ", "WRITE", "DELETE", "PROJECT_ADMIN", "SPACE_ADMIN", "ADMIN")
# Cloud's words. BAD_CREDENTIALS deliberately does not say whether the app, the user or the
# secret was wrong (atlassian-jwt); the verdict says it.
BAD_CREDENTIALS: Final = "Your presented credentials do not provide access to this resource."
NOT_AUTHENTICATED: Final = "Client must be authenticated to access this resource."
NOT_IN_SCOPE: Final = "Request not in an authorized API scope"
NO_SESSION: Final = "You are not authenticated. Authentication required to perform this operation."
UNLIMITED_LIFETIME: Final = (
    "'exp' and 'iat' are required claims. Atlassian JWT does not allow JWTs with unlimited "
    "lifetimes."
)


# --- verdicts ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The site's judgement of one REST call, as recorded (``to_dict``).

    ``reason`` is short: ``accepted``, ``not authenticated``, ``bad credentials``, ``malformed``,
    ``unknown issuer``, ``app disabled``, ``no shared secret``, ``wrong algorithm``,
    ``bad signature``, ``missing exp/iat``, ``expired``, ``not yet valid``, ``missing qsh``,
    ``qsh mismatch``, ``missing scope``. ``explanation`` says it to a person.
    """

    accepted: bool
    reason: str
    message: str | None = None
    explanation: str | None = None
    auth: str = "none"
    app_key: str | None = None
    claims: dict[str, Any] | None = None
    canonical_request: str | None = None
    qsh_expected: str | None = None
    qsh_received: str | None = None
    app_canonical_request: str | None = None
    required_scope: str | None = None
    declared_scopes: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "message": self.message,
            "explanation": self.explanation,
            "auth": self.auth,
            "app_key": self.app_key,
            "claims": self.claims,
            "canonical_request": self.canonical_request,
            "qsh_expected": self.qsh_expected,
            "qsh_received": self.qsh_received,
            "app_canonical_request": self.app_canonical_request,
            "required_scope": self.required_scope,
            "declared_scopes": self.declared_scopes,
        }


@dataclass
class Refusal:
    """A call the site turns away: the status and message to answer, and the verdict."""

    status: int
    message: str
    verdict: Verdict
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Caller:
    """Who is calling. ``user`` is the account the call acts as (an app's own user for a JWT
    call); ``app_key`` is set when an app's scopes apply (a JWT, or ``AP-Client-Key``)."""

    auth: str  # "jwt", "basic", "session" or "none"
    user: User | None
    app_key: str | None = None
    verdict: Verdict = field(default_factory=lambda: Verdict(accepted=True, reason="accepted"))

    @property
    def anonymous(self) -> bool:
        return self.user is None

    @property
    def admin(self) -> bool:
        return self.user is not None and self.user.admin


# --- sessions ---------------------------------------------------------------------------------


class Sessions:
    """The site's logged-in browser sessions: cookie value -> site login name."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}

    def start(self, username: str) -> str:
        token = secrets.token_urlsafe(24)
        self._users[token] = username
        return token

    def user(self, token: str | None) -> str | None:
        return self._users.get(token) if token else None

    def end(self, token: str | None) -> None:
        if token:
            self._users.pop(token, None)

    def clear(self) -> None:
        self._users.clear()


def start_session(host: Host, response: web.StreamResponse, username: str) -> str:
    """Log ``username`` (a site account) in: a new session, its cookie set on ``response``.
    Returns the cookie's value. For the site's own pages (a login form)."""
    if host.product.user_by_name(username) is None:
        raise LookupError(f"{username!r} is not an account of this site")
    token = host.sessions.start(username)
    _set_session_cookie(response, token)
    return token


def _set_session_cookie(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="Lax")


def session_user(host: Host, request: web.Request) -> User | None:
    """The account whose session cookie ``request`` carries, if any."""
    username = host.sessions.user(request.cookies.get(SESSION_COOKIE))
    return host.product.user_by_name(username) if username else None


def session_routes(host: Host) -> list[web.RouteDef]:
    """``<base>/rest/auth/1/session``: log in (``POST {"username", "password"}``), who am I
    (``GET``), log out (``DELETE``), with Jira Server's bodies. Cloud dropped this API for
    API tokens; the emulated site keeps it so that a browser can get a session (the emulator's
    choice, for Jira and Confluence alike)."""
    path = f"{host.settings.context_path}/rest/auth/1/session"

    async def login(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        username = body.get("username") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        if not (isinstance(username, str) and isinstance(password, str)) or not _known_account(
            host, username, password
        ):
            return web.json_response({"errorMessages": ["Login failed"], "errors": {}}, status=401)
        token = host.sessions.start(username)
        response = web.json_response(
            {
                "session": {"name": SESSION_COOKIE, "value": token},
                "loginInfo": {"failedLoginCount": 0, "loginCount": 1},
            }
        )
        _set_session_cookie(response, token)
        return response

    async def current(request: web.Request) -> web.Response:
        user = session_user(host, request)
        if user is None:
            return web.json_response({"errorMessages": [NO_SESSION], "errors": {}}, status=401)
        return web.json_response(
            {
                "self": f"{host.base_url}/rest/api/latest/user?username={user.username}",
                "name": user.username,
                "loginInfo": {"failedLoginCount": 0, "loginCount": 1},
            }
        )

    async def logout(request: web.Request) -> web.Response:
        token = request.cookies.get(SESSION_COOKIE)
        if host.sessions.user(token) is None:
            return web.json_response({"errorMessages": [NO_SESSION], "errors": {}}, status=401)
        host.sessions.end(token)
        response = web.Response(status=204)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    return [web.post(path, login), web.get(path, current), web.delete(path, logout)]


# --- authentication ---------------------------------------------------------------------------


def authenticate(host: Host, request: web.Request) -> Caller | Refusal:
    """The caller of a REST request, or why the site refuses it. Anonymous callers come back as
    a ``Caller`` without a user: whether that is enough is the route's business."""
    token = jwt.token_from_request(request.headers.get("Authorization"), request.query)
    if token is not None:
        return _authenticate_app(host, request, token)
    credentials = basic_credentials(request.headers.get("Authorization", ""))
    if credentials is not None:
        username, password = credentials
        user = host.product.user_by_name(username)
        if user is None or not _known_account(host, username, password):
            verdict = Verdict(
                accepted=False,
                reason="bad credentials",
                message=NOT_AUTHENTICATED,
                explanation=f"Basic auth as {username!r}: no such account or a wrong password.",
                auth="basic",
            )
            return Refusal(
                401,
                NOT_AUTHENTICATED,
                verdict,
                {"WWW-Authenticate": 'Basic realm="protected-area"'},
            )
        return Caller(
            auth="basic", user=user, verdict=Verdict(accepted=True, reason="accepted", auth="basic")
        )
    user = session_user(host, request)
    if user is not None:
        return _session_caller(host, request, user)
    return Caller(auth="none", user=None, verdict=Verdict(accepted=True, reason="accepted"))


def _session_caller(host: Host, request: web.Request, user: User) -> Caller:
    app_key = request.headers.get(AP_CLIENT_KEY_HEADER)
    installation = host.installations.get(app_key) if app_key else None
    # As Connect's AddonKeyExtractor: a key that names no installed app is no app at all.
    if installation is None or not installation.enabled:
        app_key = None
    return Caller(
        auth="session",
        user=user,
        app_key=app_key,
        verdict=Verdict(accepted=True, reason="accepted", auth="session", app_key=app_key),
    )


def _authenticate_app(host: Host, request: web.Request, token: str) -> Caller | Refusal:
    method = request.method.upper()
    path = request.rel_url.raw_path
    query = request.rel_url.raw_query_string
    context_path = host.settings.context_path
    canonical = jwt.canonical_request(method, path, query, context_path)
    verdict = Verdict(
        accepted=False,
        reason="",
        auth="jwt",
        canonical_request=canonical,
        qsh_expected=jwt.query_string_hash(canonical),
    )

    def refuse(status: int, reason: str, message: str, explanation: str) -> Refusal:
        verdict.reason, verdict.message, verdict.explanation = reason, message, explanation
        return Refusal(status, message, verdict)

    try:
        header = jwt.unverified_header(token)
        claims = jwt.unverified_claims(token)
    except jwt.JwtVerificationError as exc:
        return refuse(400, "malformed", str(exc), "The token is not a JWT the site can parse.")
    verdict.claims = _shown_claims(claims)
    verdict.qsh_received = claims.get("qsh") if isinstance(claims.get("qsh"), str) else None
    issuer = claims.get("iss")
    verdict.app_key = issuer if isinstance(issuer, str) else None
    installation = host.installations.get(issuer) if isinstance(issuer, str) else None
    if installation is None:
        return refuse(401, "unknown issuer", BAD_CREDENTIALS, _unknown_issuer(host, issuer))
    if not installation.enabled:
        return refuse(
            401,
            "app disabled",
            BAD_CREDENTIALS,
            f"The app {installation.key!r} is installed but disabled; a disabled app's "
            "calls are refused.",
        )
    if installation.shared_secret is None:
        return refuse(
            401,
            "no shared secret",
            BAD_CREDENTIALS,
            f"The app {installation.key!r} declares authentication type 'none', so the site "
            "gave it no sharedSecret to sign with.",
        )
    if header.get("alg") != "HS256":
        return refuse(
            401,
            "wrong algorithm",
            BAD_CREDENTIALS,
            "Calls to the product are signed HS256 with the sharedSecret, not "
            f"{header.get('alg')!r}.",
        )
    try:
        _verify_signature(token, installation.shared_secret)
    except pyjwt.InvalidSignatureError:
        return refuse(
            401,
            "bad signature",
            "JWT signature does not match the shared secret of its issuer",
            f"The token was not signed with the current sharedSecret of {installation.key!r} "
            "(the site issues a new one on every install: use the one of the latest "
            "`installed` callback).",
        )
    except pyjwt.InvalidTokenError as exc:
        return refuse(400, "malformed", f"Invalid JWT: {exc}", "The token cannot be verified.")
    time_refusal = _check_times(claims, time.time())
    if time_refusal is not None:
        return refuse(401, *time_refusal)
    received = claims.get("qsh")
    if received is None:
        return refuse(
            401,
            "missing qsh",
            "Claim 'qsh' is missing.",
            "Every call to the product must carry the qsh of its request.",
        )
    if received != verdict.qsh_expected:
        app_canonical, explanation = diagnose_qsh(method, path, query, context_path, str(received))
        verdict.app_canonical_request = app_canonical
        return refuse(
            401,
            "qsh mismatch",
            f"Expecting claim 'qsh' to have value '{verdict.qsh_expected}' but instead it has "
            f"the value '{received}'",
            explanation,
        )
    verdict.accepted, verdict.reason = True, "accepted"
    user = host.product.app_user(installation.key, installation.name)
    return Caller(auth="jwt", user=user, app_key=installation.key, verdict=verdict)


def _verify_signature(token: str, secret: str) -> None:
    # Times are checked apart, with Cloud's leeway and words; `iat` in the future is no error
    # there, and `aud` (ACE sends [clientKey]) is not checked.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pyjwt.InsecureKeyLengthWarning)
        pyjwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )


def _check_times(claims: dict[str, Any], now: float) -> tuple[str, str, str] | None:
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not (_is_number(exp) and _is_number(iat)):
        return (
            "missing exp/iat",
            UNLIMITED_LIFETIME,
            "Both exp and iat must be numbers of seconds since the epoch.",
        )
    assert isinstance(exp, int | float)
    if exp < now - EXP_LEEWAY_S:
        return (
            "expired",
            f"Expired at {_java_date(exp)} and time is now {_java_date(now)} "
            f"({EXP_LEEWAY_S} seconds leeway is allowed)",
            f"The token expired {now - exp:.0f} s ago; sign each call just before making it.",
        )
    if _is_number(nbf):
        assert isinstance(nbf, int | float)
        if nbf > now + EXP_LEEWAY_S:
            return (
                "not yet valid",
                f"Not-before time is {_java_date(nbf)} and time is now {_java_date(now)} "
                f"({EXP_LEEWAY_S} seconds leeway is allowed)",
                "The token's nbf is in the future; check the app's clock.",
            )
    return None


def _unknown_issuer(host: Host, issuer: object) -> str:
    if not isinstance(issuer, str):
        return "The token has no iss claim; an app puts its app key there."
    if issuer == host.client_key:
        return (
            f"iss is the site's clientKey {issuer!r}: that is who the site is to an app; an app "
            "calling the product puts its own app key in iss."
        )
    installed = ", ".join(sorted(host.installations)) or "none"
    return f"No app with the key {issuer!r} is installed on this site (installed: {installed})."


# --- scopes -----------------------------------------------------------------------------------


def declared_scopes(installation: Installation) -> list[str]:
    """The descriptor's scopes, upper-cased (Connect reads them in any case)."""
    scopes = installation.descriptor.get("scopes")
    if not isinstance(scopes, list):
        return []
    return [scope.upper() for scope in scopes if isinstance(scope, str)]


def scope_granted(declared: Iterable[str], required: str) -> bool:
    """Whether scopes ``declared`` grant ``required`` (directly or by implication)."""
    for scope in declared:
        if scope == required:
            return True
        if scope in SCOPES and required in SCOPES:
            implied = SCOPES.index(scope) > SCOPES.index(required)
            if implied and not (scope == "SPACE_ADMIN" and required == "PROJECT_ADMIN"):
                return True
    return False


def check_scope(
    host: Host, caller: Caller, request: web.Request, required: str | None
) -> Refusal | None:
    """The 403 for an app call outside the app's scopes; ``None`` when it may go on (user calls
    and routes without a scope always may)."""
    if caller.app_key is None:
        return None
    installation = host.installations.get(caller.app_key)
    declared = declared_scopes(installation) if installation else []
    verdict = caller.verdict
    verdict.required_scope, verdict.declared_scopes = required, declared
    if required is None or scope_granted(declared, required):
        return None
    path = request.rel_url.raw_path
    message = (
        f"{NOT_IN_SCOPE}: {request.method} {path} requires the {required} scope, and the app "
        f"'{caller.app_key}' declares {', '.join(declared) or 'no scopes'}."
    )
    verdict.accepted, verdict.reason, verdict.message = False, "missing scope", message
    wider = _wider(required)
    verdict.explanation = (
        f'Add "{required.lower()}" to "scopes" in the descriptor and reinstall'
        + (f" (a wider scope such as {wider.lower()} grants it too)." if wider else ".")
    )
    return Refusal(403, message, verdict)


def _wider(required: str) -> str | None:
    """The next scope that implies ``required``, if any."""
    if required not in SCOPES:
        return None
    return next(
        (s for s in SCOPES[SCOPES.index(required) + 1 :] if scope_granted([s], required)), None
    )


# --- qsh diagnosis ----------------------------------------------------------------------------


def diagnose_qsh(
    method: str, path: str, query: str, context_path: str, received: str
) -> tuple[str | None, str]:
    """Which canonical request the app's qsh ``received`` is the hash of, among the usual
    mistakes, and an explanation. ``(None, ...)`` when it is none of them."""
    if received == jwt.CONTEXT_QSH:
        return None, (
            "The token is a context token (qsh 'context-qsh', from AP.context.getToken()); "
            "a call to the product needs a token signed for its own request."
        )
    expected = jwt.canonical_request(method, path, query, context_path)
    for canonical, mistakes in _candidates(method, path, query, context_path):
        if canonical != expected and jwt.query_string_hash(canonical) == received:
            return canonical, (
                "The app hashed a different canonical request: it "
                + "; it ".join(mistakes)
                + f". The site hashes {expected!r}."
            )
    return None, (
        f"The app's qsh is the hash of none of the usual mistakes (context path, query left "
        f"out, unsorted or unencoded, method, trailing slash). The site hashes {expected!r}: "
        "compare it with the app's canonical request."
    )


def _candidates(
    method: str, path: str, query: str, context_path: str
) -> Iterator[tuple[str, list[str]]]:
    paths: list[tuple[str, list[str]]] = [(jwt.canonical_path(path, context_path), [])]
    if context_path:
        paths.append(
            (
                jwt.canonical_path(path),
                [f"included the context path {context_path} (paths are relative to the base URL)"],
            )
        )
    relative = jwt.canonical_path(path, context_path)
    if path.endswith("/") and relative != "/":
        paths.append((relative + "/", ["kept the trailing slash"]))
    if unquote(relative) != relative:
        paths.append((unquote(relative), ["decoded the path"]))
    queries: list[tuple[str, list[str]]] = [(jwt.canonical_query(query), [])]
    if query:
        queries.append(("", ["left the query out"]))
        raw = "&".join(p for p in query.split("&") if not p.startswith(f"{jwt.JWT_PARAM}="))
        queries.append((raw, ["used the query as sent instead of sorted and re-encoded"]))
        queries.append(("&".join(sorted(raw.split("&"))), ["sorted the query without re-encoding"]))
    methods: list[tuple[str, list[str]]] = [(method, [])]
    methods.append((method.lower(), ["did not upper-case the method"]))
    for other in ("GET", "POST", "PUT", "DELETE"):
        if other != method:
            methods.append((other, [f"signed {other} but the request is {method}"]))
    for signed_method, method_mistakes in methods:
        for signed_path, path_mistakes in paths:
            for signed_query, query_mistakes in queries:
                mistakes = method_mistakes + path_mistakes + query_mistakes
                if mistakes:
                    yield f"{signed_method}&{signed_path}&{signed_query}", mistakes


# --- helpers ----------------------------------------------------------------------------------


def _known_account(host: Host, username: str, password: str) -> bool:
    return any(
        password_matches(accounts, username, password)
        for accounts in (host.settings.users, host.settings.non_admins)
    )


def _shown_claims(claims: dict[str, Any]) -> dict[str, Any]:
    # Claims only; the token itself (which could be replayed until it expires) is never kept.
    return {
        name: claims[name]
        for name in ("iss", "sub", "aud", "iat", "exp", "nbf", "qsh")
        if name in claims
    }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _java_date(seconds: float) -> str:
    # java.util.Date#toString in UTC, as atlassian-jwt's messages print it.
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(seconds))
