"""Signed cookie values: the pages' session and the short-lived sign-in state.

Both are HS256 JWTs (PyJWT) under a key derived from ``EGENMON_CLINIC_SESSION_SECRET``;
the purpose is the token's audience, so a sign-in state can never pass as a session.
They are signed, not encrypted: they hold no personal data beyond the staff subject (and
the IdP's ID token kept as the logout hint), and the cookies are HttpOnly.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import jwt

from clinic_api.errors import AuthError

SESSION = "egenmon-session"
SIGN_IN = "egenmon-sign-in"
_ISSUER = "egenmon-clinic"


class CookieSigner:
    def __init__(self, secret: bytes) -> None:
        # Hashed with a label: a fixed 32-byte HMAC key whatever the secret's length, and one
        # not usable for anything else the secret might also key.
        self._key = hashlib.sha256(b"egenmon clinic cookie signing v1\0" + secret).digest()

    def sign(self, purpose: str, payload: dict[str, Any], ttl_s: int) -> str:
        now = int(time.time())
        claims = {**payload, "iss": _ISSUER, "aud": purpose, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, purpose: str, value: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                value,
                self._key,
                algorithms=["HS256"],
                audience=purpose,
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise AuthError("session expired") from err
        except jwt.InvalidTokenError as err:
            raise AuthError(f"invalid session: {type(err).__name__}") from err
        return claims
