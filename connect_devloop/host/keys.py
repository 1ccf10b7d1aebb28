"""The RSA key pair an emulated site signs install callbacks with, and the key server route.

Add-ons fetch the public key as PEM text from ``GET <key server>/<kid>``; pointing ACE's
``CONNECT_KEYS_CDN_URL`` at ``{origin}/keys`` makes a real ACE app accept the emulator's installs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["SigningKey", "key_server_routes"]


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    public_pem: str
    # Kept loaded: re-parsing the PEM for each callback cost ~30 ms of CPU per signature.
    private_key: rsa.RSAPrivateKey = field(repr=False, compare=False)

    @classmethod
    def generate(cls) -> SigningKey:
        # 2048 bits: the smallest size PyJWT accepts without a warning.
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        public_pem = (
            private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )
        return cls(
            kid=str(uuid.uuid4()),
            private_pem=private_pem,
            public_pem=public_pem,
            private_key=private_key,
        )


def key_server_routes(key: SigningKey) -> list[web.RouteDef]:
    async def public_key(request: web.Request) -> web.Response:
        if request.match_info["kid"] != key.kid:
            return web.Response(status=404, text="Unknown key id.\n")
        return web.Response(text=key.public_pem, content_type="text/plain")

    return [web.get("/keys/{kid}", public_key)]
