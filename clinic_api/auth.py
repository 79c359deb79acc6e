"""OIDC token verification and the staff member a token belongs to.

Tokens (API bearer tokens and the ID tokens of the pages' sign-in) are RS256/ES256/PS256
JWTs checked for signature (issuer's JWKS), issuer, audience and expiry. The staff row is
looked up (``queries.staff.load_staff``) by the token's ``sub`` (or the configured subject
claim, e.g. an HSA-id); roles and care units come from the database, never from the token,
so a region's IdP only has to say who someone is.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from clinic_api.errors import AuthError, ClinicError

log = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "ES256", "PS256"]
CLINICAL_ROLES = frozenset({"nurse", "physician"})


@dataclass(frozen=True, slots=True)
class Staff:
    id: uuid.UUID
    subject: str
    display_name: str
    roles: frozenset[str]
    unit_ids: tuple[uuid.UUID, ...]
    remote_addr: str | None = None

    @property
    def clinical(self) -> bool:
        return bool(self.roles & CLINICAL_ROLES)

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


class KeySource(Protocol):
    def signing_key(self, token: str) -> Any: ...


class JwksKeySource:
    """Keys from the issuer's published JWKS (cached by PyJWKClient, refetched on a new kid).

    ``jwks_url`` may be a callable (the ``jwks_uri`` of the issuer's discovery document),
    resolved on first use so that the app starts while the IdP is briefly unreachable.
    """

    def __init__(self, jwks_url: str | Callable[[], str]) -> None:
        self._url = jwks_url
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def _jwks_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                try:
                    url = self._url if isinstance(self._url, str) else self._url()
                except ClinicError as err:
                    raise AuthError(f"issuer keys unavailable: {err}") from err
                self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=5)
            return self._client

    def signing_key(self, token: str) -> Any:
        client = self._jwks_client()
        try:
            return client.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as err:
            raise AuthError(f"no usable signing key: {err}") from err
        except jwt.DecodeError as err:
            raise AuthError("malformed token") from err


@dataclass
class DevIssuerKeys:
    """The development issuer's RSA key, generated per process (local demo only)."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def signing_key(self, token: str) -> Any:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as err:
            raise AuthError("malformed token") from err
        if header.get("kid") != self.kid:
            raise AuthError("unknown key id")
        return self.private_key.public_key()

    def issue(
        self,
        *,
        issuer: str,
        audience: str,
        subject: str,
        ttl_s: int,
        name: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + ttl_s}
        if name:
            claims["name"] = name
        claims.update(extra or {})
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


@dataclass
class TokenVerifier:
    keys: KeySource
    issuer: str
    audience: str
    leeway_s: int = 30
    # Which claim names the staff row; "sub" unless the region maps e.g. an HSA-id claim.
    subject_claim: str = "sub"

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims once signature, issuer, audience and expiry have been checked."""
        key = self.keys.signing_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise AuthError("token expired") from err
        except jwt.InvalidAudienceError as err:
            raise AuthError("wrong audience") from err
        except jwt.InvalidIssuerError as err:
            raise AuthError("wrong issuer") from err
        except jwt.InvalidTokenError as err:
            raise AuthError(f"invalid token: {type(err).__name__}") from err
        return claims

    def subject_of(self, claims: dict[str, Any]) -> str:
        sub = claims.get(self.subject_claim)
        if not isinstance(sub, str) or not sub:
            raise AuthError("token has no subject")
        return sub

    def subject(self, token: str) -> str:
        return self.subject_of(self.claims(token))
