"""Connect JWT: the PROTOCOL.md §5 vectors, signing and verifying, and order-independence."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from urllib.parse import urlencode

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from connect_devloop import jwt

VECTORS = [
    (
        "GET&/path/to/service&first=param&repeated=parameter%201,parameter%202&zee_last=param",
        "e52bb281606c3bd9ca16cfe96fe2df78f5d9ffa126f06befd750dfa10fa1a897",
    ),
    ("POST&/installed&", "4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4"),
    ("POST&/uninstalled&", "8a8d06f040b246544d605b08aeb419e30b5cf0e200f512888486585ecce6a52e"),
    ("GET&/&", "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"),
    (
        "GET&/search&q=a%20b&y=~&z=%2A",
        "56e200b3867211bed4da99ee1fd015d367e7afc8c8586c42a0596bed9321aafe",
    ),
    (
        "GET&/rest/api/content&expand=space%2Cversion&limit=2",
        "114f1ec61f16572f6731d4513c1660734e8fde5d5f70b8ac511980aab4ae330b",
    ),
]
SECRET = "a-shared-secret-that-is-long-enough-for-hs256"


@functools.cache
def rsa_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


# --- the vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("canonical", "qsh"), VECTORS)
def test_query_string_hash_of_each_vector(canonical: str, qsh: str) -> None:
    assert jwt.query_string_hash(canonical) == qsh


@pytest.mark.parametrize(
    ("method", "url", "base", "expected"),
    [
        (
            "get",
            "/path/to/service?zee_last=param&repeated=parameter%201&first=param"
            "&repeated=parameter%202",
            "",
            VECTORS[0][0],
        ),
        ("POST", "https://addon.example.com/installed", "https://addon.example.com", VECTORS[1][0]),
        ("POST", "https://addon.example.com/app/uninstalled", "/app", VECTORS[2][0]),
        ("GET", "https://addon.example.com", "", VECTORS[3][0]),
        ("GET", "/search?q=a+b&z=%2A&y=~", "", VECTORS[4][0]),
        (
            "GET",
            "https://site.atlassian.net/wiki/rest/api/content?expand=space,version&limit=2",
            "https://site.atlassian.net/wiki",
            VECTORS[5][0],
        ),
    ],
)
def test_canonical_request_from_raw_urls(method: str, url: str, base: str, expected: str) -> None:
    assert jwt.canonical_request_from_url(method, url, base) == expected


def test_canonical_request_takes_a_mapping_or_pairs() -> None:
    mapping = {
        "zee_last": "param",
        "repeated": ["parameter 2", "parameter 1"],
        "first": "param",
        "jwt": "dropped",
    }
    pairs = [("repeated", "parameter 2"), ("first", "param"), ("zee_last", "param")]
    pairs.append(("repeated", "parameter 1"))
    assert jwt.canonical_request("GET", "/path/to/service", mapping) == VECTORS[0][0]
    assert jwt.canonical_request("GET", "/path/to/service/", pairs) == VECTORS[0][0]


@pytest.mark.parametrize(
    ("path", "base", "expected"),
    [
        ("", "", "/"),
        ("/", "", "/"),
        ("/wiki", "/wiki", "/"),
        ("/wiki/", "/wiki/", "/"),
        ("/wikipedia/page", "/wiki", "/wikipedia/page"),
        ("/a&b/", "", "/a%26b"),
        ("relative/path", "", "/relative/path"),
        ("/trailing//", "", "/trailing/"),
    ],
)
def test_canonical_path(path: str, base: str, expected: str) -> None:
    assert jwt.canonical_path(path, base) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("jwt=abc", ""),
        ("k=", "k="),
        ("k", "k="),
        ("a=1,2", "a=1%2C2"),
        ("b=%2B+x&a=%7E%21", "a=~%21&b=%2B%20x"),
        ("r=b&r=a&r=a", "r=a,a,b"),
        ("caf%C3%A9=%E2%82%AC", "caf%C3%A9=%E2%82%AC"),
        ("B=1&a=2&_=3", "B=1&_=3&a=2"),
        # Sorted as decoded text, then encoded (as npm atlassian-jwt 2.0.3 computes them):
        # "%2F" and "%C3%A9" would sort before "-" and "~" if the encoded forms were compared.
        ("a%2F=1&a-=2", "a-=2&a%2F=1"),
        ("%C3%A9=1&~=2", "~=2&%C3%A9=1"),
        ("k=a%2F&k=a-", "k=a-,a%2F"),
    ],
)
def test_canonical_query(query: str, expected: str) -> None:
    assert jwt.canonical_query(query) == expected


# --- claims, signing, verifying ---------------------------------------------------------------


def test_make_claims_builds_iat_exp_and_qsh() -> None:
    claims = jwt.make_claims(
        "client-key",
        "GET",
        "/wiki/rest/api/content",
        "expand=space,version&limit=2",
        "/wiki",
        sub="account-1",
        aud=["https://addon.example.com"],
        context={"user": {}},
        now=1000,
    )
    assert claims == {
        "iss": "client-key",
        "iat": 1000,
        "exp": 1180,
        "qsh": VECTORS[5][1],
        "sub": "account-1",
        "aud": ["https://addon.example.com"],
        "context": {"user": {}},
    }


def test_make_claims_omits_optional_claims_and_uses_the_clock() -> None:
    before = int(time.time())
    claims = jwt.make_claims("iss", "POST", "/installed", ttl=60)
    assert set(claims) == {"iss", "iat", "exp", "qsh"}
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 60
    assert claims["qsh"] == VECTORS[1][1]


def test_hs256_header_and_round_trip() -> None:
    claims = jwt.make_claims("client", "GET", "/", "")
    token = jwt.encode_hs256(claims, SECRET)
    assert jwt.unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    assert jwt.unverified_claims(token) == claims
    assert jwt.decode_hs256(token, SECRET) == claims


def test_hs256_accepts_a_short_secret_without_warning() -> None:
    # Hosts choose the secret; warnings are errors in this test suite.
    claims = jwt.make_claims("client", "GET", "/")
    assert jwt.decode_hs256(jwt.encode_hs256(claims, "short"), "short") == claims


def test_rs256_header_and_round_trip_with_pyjwt() -> None:
    private_pem, public_pem = rsa_key_pair()
    claims = jwt.make_claims("client", "POST", "/installed", aud=["https://addon.example.com"])
    token = jwt.encode_rs256(claims, private_pem, "kid-1")
    assert jwt.unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    decoded = pyjwt.decode(
        token, public_pem, algorithms=["RS256"], audience="https://addon.example.com"
    )
    assert decoded == claims
    assert jwt.decode_rs256(token, public_pem, audience="https://addon.example.com") == claims


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda: jwt.encode_hs256(jwt.make_claims("c", "GET", "/", now=1000), SECRET), "expired"),
        (
            lambda: jwt.encode_hs256(jwt.make_claims("c", "GET", "/"), "another-" + SECRET),
            "bad signature",
        ),
        (lambda: jwt.encode_hs256({"iss": "c", "iat": int(time.time())}, SECRET), "missing exp"),
        (lambda: "not.a.token", "malformed"),
        (
            lambda: jwt.encode_hs256(jwt.make_claims("c", "GET", "/", aud="someone-else"), SECRET),
            "wrong audience",
        ),
        (
            lambda: jwt.encode_rs256(jwt.make_claims("c", "GET", "/"), rsa_key_pair()[0], "k"),
            "wrong algorithm",
        ),
    ],
)
def test_decode_hs256_verdicts(make_token: Callable[[], str], reason: str) -> None:
    audience = "me" if reason == "wrong audience" else None
    with pytest.raises(jwt.JwtVerificationError) as caught:
        jwt.decode_hs256(make_token(), SECRET, audience=audience)
    assert caught.value.reason == reason


def test_decode_hs256_ignores_an_aud_it_was_not_asked_about() -> None:
    claims = jwt.make_claims("c", "GET", "/", aud="https://addon.example.com")
    assert jwt.decode_hs256(jwt.encode_hs256(claims, SECRET), SECRET) == claims


def test_decode_hs256_leeway_accepts_a_just_expired_token() -> None:
    claims = jwt.make_claims("c", "GET", "/", ttl=0, now=int(time.time()) - 5)
    assert jwt.decode_hs256(jwt.encode_hs256(claims, SECRET), SECRET, leeway=30) == claims


def test_check_qsh() -> None:
    claims = jwt.make_claims("c", "GET", "/search", "q=a+b&z=%2A&y=~")
    jwt.check_qsh(claims, VECTORS[4][0])
    with pytest.raises(jwt.JwtVerificationError, match="does not match") as caught:
        jwt.check_qsh(claims, "GET&/search&")
    assert caught.value.reason == "qsh mismatch"
    with pytest.raises(jwt.JwtVerificationError) as missing:
        jwt.check_qsh({}, "GET&/&")
    assert missing.value.reason == "missing qsh"
    with pytest.raises(jwt.JwtVerificationError) as context:
        jwt.check_qsh({"qsh": jwt.CONTEXT_QSH}, "GET&/&")
    assert context.value.reason == "context qsh"
    jwt.check_qsh({"qsh": jwt.CONTEXT_QSH}, "GET&/&", allow_context_qsh=True)


def test_unverified_helpers_reject_garbage() -> None:
    with pytest.raises(jwt.JwtVerificationError):
        jwt.unverified_header("garbage")
    with pytest.raises(jwt.JwtVerificationError):
        jwt.unverified_claims("garbage")


@pytest.mark.parametrize(
    ("authorization", "query", "expected"),
    [
        ("JWT abc.def.ghi", {}, "abc.def.ghi"),
        ("jwt  abc.def.ghi ", {"jwt": "other"}, "abc.def.ghi"),
        ("Basic Zm9vOmJhcg==", {"jwt": "from.query.t"}, "from.query.t"),
        (None, {"jwt": "from.query.t"}, "from.query.t"),
        (None, {}, None),
        ("JWT ", {"jwt": ""}, None),
    ],
)
def test_token_from_request(
    authorization: str | None, query: dict[str, str], expected: str | None
) -> None:
    assert jwt.token_from_request(authorization, query) == expected


# --- properties -------------------------------------------------------------------------------

# Any Unicode but lone surrogates, which cannot be UTF-8 encoded into a URL.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
params = st.lists(st.tuples(texts, texts), max_size=8)


@given(pairs=params, data=st.data())
def test_canonical_query_is_independent_of_parameter_order(
    pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(pairs))
    expected = jwt.canonical_query(pairs)
    assert jwt.canonical_query(shuffled) == expected
    # The same parameters sent as a query string (as a browser encodes them) agree too.
    assert jwt.canonical_query(urlencode(shuffled)) == expected


@given(pairs=params)
def test_canonical_query_is_ascii_and_drops_jwt(pairs: list[tuple[str, str]]) -> None:
    canonical = jwt.canonical_query([*pairs, ("jwt", "token")])
    assert canonical.isascii()
    assert " " not in canonical
    assert canonical == jwt.canonical_query([p for p in pairs if p[0] != "jwt"])


@given(
    iss=texts,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.from_regex(r"\A(/[a-z0-9._~-]{0,8}){0,4}\Z"),
    pairs=params,
    secret=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64),
)
def test_hs256_sign_then_verify_round_trips(
    iss: str, method: str, path: str, pairs: list[tuple[str, str]], secret: str
) -> None:
    claims = jwt.make_claims(iss, method, path, pairs)
    decoded = jwt.decode_hs256(jwt.encode_hs256(claims, secret), secret)
    assert decoded == claims
    jwt.check_qsh(decoded, jwt.canonical_request(method, path, pairs))


@settings(max_examples=25)
@given(iss=texts, path=st.from_regex(r"\A(/[a-z0-9._~-]{0,8}){0,4}\Z"), kid=texts)
def test_rs256_sign_then_verify_with_the_public_key_round_trips(
    iss: str, path: str, kid: str
) -> None:
    private_pem, public_pem = rsa_key_pair()
    claims = jwt.make_claims(iss, "POST", path, aud=["https://addon.example.com"])
    token = jwt.encode_rs256(claims, private_pem, kid)
    assert jwt.unverified_header(token)["kid"] == kid
    assert jwt.decode_rs256(token, public_pem, audience="https://addon.example.com") == claims
