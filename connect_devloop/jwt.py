"""Connect JWT: the canonical request, its query string hash (``qsh``), signing and verifying.

Pure: no I/O. Implements PROTOCOL.md §4-§5 on top of PyJWT. Hosts sign requests to an add-on
with HS256 and the tenant's ``sharedSecret``; install callbacks are signed with RS256 and a key the
add-on fetches from a key server by ``kid``. Every signed request carries ``qsh``, the SHA-256 of
``METHOD&path&query`` in canonical form, so a token cannot be replayed against another URL.

Verification raises ``JwtVerificationError`` whose ``reason`` is a short verdict a person can act
on ("expired", "bad signature", "qsh mismatch", ...).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.types import Options

from .errors import DevloopError

__all__ = [
    "CONTEXT_QSH",
    "DEFAULT_TTL_S",
    "JWT_PARAM",
    "JwtVerificationError",
    "Query",
    "canonical_path",
    "canonical_query",
    "canonical_request",
    "canonical_request_from_url",
    "check_qsh",
    "check_times",
    "decode_hs256",
    "decode_rs256",
    "encode_hs256",
    "encode_rs256",
    "make_claims",
    "query_string_hash",
    "token_from_request",
    "unverified_claims",
    "unverified_header",
]

JWT_PARAM = "jwt"
DEFAULT_TTL_S = 180
# What `AP.context.getToken()` puts in `qsh`: such tokens are not bound to any URL.
CONTEXT_QSH = "context-qsh"
REQUIRED_CLAIMS = ("iss", "iat", "exp")

Query = str | Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]
"""A raw query string (``a=1&b=2``, ``+`` is a space), a mapping, or ``(key, value)`` pairs."""


class JwtVerificationError(DevloopError):
    """A token failed verification; ``reason`` is the short verdict (e.g. ``"expired"``)."""

    def __init__(self, reason: str, message: str | None = None, hint: str | None = None) -> None:
        super().__init__(message or f"JWT rejected: {reason}", hint)
        self.reason = reason


# --- canonical request and qsh ----------------------------------------------------------------


def canonical_path(path: str, base_path: str = "") -> str:
    """``path`` relative to ``base_path`` as it enters the canonical request."""
    base = base_path.rstrip("/")
    # Only a whole-segment prefix is the base: "/wiki" must not eat the start of "/wikipedia".
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :]
    if not path.startswith("/"):
        path = "/" + path
    path = path.replace("&", "%26")
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


def canonical_query(query: Query) -> str:
    """The query in canonical form: ``jwt`` dropped, sorted, RFC 3986 encoded, repeats joined.

    Keys and repeated values are sorted as decoded text, then encoded: "a-" comes before "a/"
    although "%2F" sorts before "-". That is what the hosts and npm atlassian-jwt (which ACE
    uses) compute; PROTOCOL.md §5 says the values are sorted encoded, but the host sorts them
    decoded (atlassian-jwt on PyPI calls that bug JWT-20 and follows it).
    """
    values_by_key: dict[str, list[str]] = defaultdict(list)
    for key, value in _pairs(query):
        if key == JWT_PARAM:
            continue
        values_by_key[key].append(value)
    return "&".join(
        f"{_encode(key)}={','.join(_encode(value) for value in sorted(values_by_key[key]))}"
        for key in sorted(values_by_key)
    )


def canonical_request(method: str, path: str, query: Query = "", base_path: str = "") -> str:
    """``METHOD&canonical-path&canonical-query`` (PROTOCOL.md §5)."""
    return f"{method.upper()}&{canonical_path(path, base_path)}&{canonical_query(query)}"


def canonical_request_from_url(method: str, url: str, base_path: str = "") -> str:
    """``canonical_request`` for a whole URL or a path with its query string.

    ``base_path`` may be a path (``/wiki``) or the base URL itself
    (``https://site.atlassian.net/wiki``); only its path counts.
    """
    parts = urlsplit(url)
    return canonical_request(method, parts.path, parts.query, _path_of(base_path))


def query_string_hash(canonical: str) -> str:
    """The ``qsh`` claim: lowercase hex SHA-256 of a canonical request."""
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_qsh(
    claims: Mapping[str, Any], canonical: str, *, allow_context_qsh: bool = False
) -> None:
    """Raise ``JwtVerificationError`` unless the token's ``qsh`` matches ``canonical``."""
    qsh = claims.get("qsh")
    if qsh is None:
        raise JwtVerificationError("missing qsh", "JWT rejected: it has no qsh claim")
    if qsh == CONTEXT_QSH:
        if allow_context_qsh:
            return
        raise JwtVerificationError(
            "context qsh",
            "JWT rejected: a context token (qsh 'context-qsh') is not valid for this request",
        )
    expected = query_string_hash(canonical)
    if qsh != expected:
        raise JwtVerificationError(
            "qsh mismatch",
            f"JWT rejected: qsh does not match the request {canonical!r}",
            hint="Both sides must canonicalise the same method, path (minus the base path) "
            "and query.",
        )


# --- claims and signing -----------------------------------------------------------------------


def make_claims(
    iss: str,
    method: str,
    path: str,
    query: Query = "",
    base_path: str = "",
    *,
    ttl: int = DEFAULT_TTL_S,
    sub: str | None = None,
    aud: str | Sequence[str] | None = None,
    context: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Claims for a request: ``iss``, ``iat``, ``exp`` (``iat + ttl``), ``qsh`` and the optional
    ``sub``, ``aud`` and ``context``."""
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": iss,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "qsh": query_string_hash(canonical_request(method, path, query, base_path)),
    }
    if sub is not None:
        claims["sub"] = sub
    if aud is not None:
        claims["aud"] = aud if isinstance(aud, str) else list(aud)
    if context is not None:
        claims["context"] = dict(context)
    return claims


def encode_hs256(claims: Mapping[str, Any], shared_secret: str) -> str:
    """Sign ``claims`` with the tenant's shared secret."""
    with _short_secrets_allowed():
        return pyjwt.encode(dict(claims), shared_secret, algorithm="HS256", headers={"typ": "JWT"})


def encode_rs256(claims: Mapping[str, Any], private_key: str | RSAPrivateKey, kid: str) -> str:
    """Sign ``claims`` as a host signs install callbacks: header ``{typ, alg, kid}``.

    Pass a loaded key where signing repeats: parsing a PEM costs ~30 ms (cryptography checks
    the RSA key on load), signing with the loaded key ~0.5 ms.
    """
    return pyjwt.encode(
        dict(claims), private_key, algorithm="RS256", headers={"typ": "JWT", "kid": kid}
    )


def decode_hs256(
    token: str,
    shared_secret: str,
    *,
    audience: str | Sequence[str] | None = None,
    leeway: float = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify an HS256 token's signature, ``exp``/``iat`` (and ``aud`` when given); return its
    claims. Does not check ``qsh``: see ``check_qsh``.

    ``now`` (seconds since the epoch) replaces the clock for the time checks, so a verdict on
    an old token can be reproduced; by default PyJWT reads the clock itself.
    """
    with _short_secrets_allowed():
        return _decode(token, shared_secret, "HS256", audience, leeway, now)


def decode_rs256(
    token: str,
    public_key_pem: str,
    *,
    audience: str | Sequence[str] | None = None,
    leeway: float = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify an RS256 token against a public key PEM; like ``decode_hs256``."""
    return _decode(token, public_key_pem, "RS256", audience, leeway, now)


def check_times(claims: Mapping[str, Any], now: float, leeway: float = 0) -> None:
    """Raise ``JwtVerificationError`` when ``exp`` has passed or ``iat`` is in the future,
    measured against ``now``; like PyJWT's own checks, but on a clock the caller chooses."""
    exp, iat = claims.get("exp"), claims.get("iat")
    for name, value in (("exp", exp), ("iat", iat)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise JwtVerificationError("malformed", f"JWT rejected: {name} is not a number")
    if isinstance(exp, int | float) and exp <= now - leeway:
        raise JwtVerificationError("expired", "JWT rejected: the token has expired")
    if isinstance(iat, int | float) and iat > now + leeway:
        raise JwtVerificationError(
            "not yet valid",
            "JWT rejected: issued in the future",
            hint="Check that both clocks are right.",
        )


def unverified_header(token: str) -> dict[str, Any]:
    """The token's header, unverified (to read ``alg`` and ``kid`` before choosing a key)."""
    try:
        return dict(pyjwt.get_unverified_header(token))
    except pyjwt.InvalidTokenError as exc:
        raise JwtVerificationError("malformed", f"JWT rejected: malformed token ({exc})") from exc


def unverified_claims(token: str) -> dict[str, Any]:
    """The token's claims, unverified (to read ``iss`` before looking up the tenant's secret)."""
    try:
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.InvalidTokenError as exc:
        raise JwtVerificationError("malformed", f"JWT rejected: malformed token ({exc})") from exc
    return dict(claims)


def token_from_request(authorization: str | None, query: Mapping[str, str]) -> str | None:
    """The token of a Connect request: ``Authorization: JWT <t>`` first, else ``?jwt=``."""
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.upper() == "JWT" and credentials.strip():
            return credentials.strip()
    token = query.get(JWT_PARAM)
    return token or None


# --- helpers ----------------------------------------------------------------------------------


def _decode(
    token: str,
    key: str,
    algorithm: str,
    audience: str | Sequence[str] | None,
    leeway: float,
    now: float | None = None,
) -> dict[str, Any]:
    # PyJWT rejects any `aud` it was not told to expect; Connect HS256 tokens may carry one.
    options: Options = {"verify_aud": audience is not None, "require": list(REQUIRED_CLAIMS)}
    if now is not None:
        # PyJWT cannot be given a clock: skip its time checks and make them against `now`.
        options["verify_exp"] = options["verify_iat"] = options["verify_nbf"] = False
    try:
        claims = pyjwt.decode(
            token, key, algorithms=[algorithm], audience=audience, leeway=leeway, options=options
        )
    except pyjwt.ExpiredSignatureError as exc:
        raise JwtVerificationError("expired", "JWT rejected: the token has expired") from exc
    except pyjwt.ImmatureSignatureError as exc:
        raise JwtVerificationError(
            "not yet valid",
            "JWT rejected: issued in the future",
            hint="Check that both clocks are right.",
        ) from exc
    except pyjwt.InvalidSignatureError as exc:
        raise JwtVerificationError("bad signature", "JWT rejected: bad signature") from exc
    except pyjwt.InvalidAudienceError as exc:
        raise JwtVerificationError("wrong audience", f"JWT rejected: {exc}") from exc
    except pyjwt.MissingRequiredClaimError as exc:
        raise JwtVerificationError(f"missing {exc.claim}", f"JWT rejected: {exc}") from exc
    except pyjwt.InvalidAlgorithmError as exc:
        raise JwtVerificationError(
            "wrong algorithm", f"JWT rejected: expected {algorithm} ({exc})"
        ) from exc
    except pyjwt.InvalidTokenError as exc:
        raise JwtVerificationError("malformed", f"JWT rejected: {exc}") from exc
    if now is not None:
        check_times(claims, now, leeway)
    return dict(claims)


@contextmanager
def _short_secrets_allowed() -> Iterator[None]:
    """Silence PyJWT's key-length warning: the host, not this code, chooses a sharedSecret."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pyjwt.InsecureKeyLengthWarning)
        yield


def _pairs(query: Query) -> Iterable[tuple[str, str]]:
    if isinstance(query, str):
        return parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if isinstance(query, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in query.items():
            if isinstance(value, str):
                pairs.append((key, value))
            else:
                pairs.extend((key, item) for item in value)
        return pairs
    return query


def _encode(text: str) -> str:
    # RFC 3986: only ALPHA / DIGIT / "-" / "." / "_" / "~" stay as they are.
    return quote(text, safe="~")


def _path_of(base: str) -> str:
    return urlsplit(base).path if "://" in base else base
