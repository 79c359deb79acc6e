"""The pages' OpenID Connect sign-in: the relying-party side of the authorization-code flow.

PKCE (RFC 7636, S256 only), the issuer's discovery document (OIDC Discovery 1.0, cached),
the code exchange at the token endpoint (RFC 6749 §4.1.3) and the ID-token checks of
OIDC Core §3.1.3.7 that signature verification alone does not cover (nonce, azp).
The protocol decisions are plain functions; ``OidcClient`` is the thin httpx shell.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from clinic_api.errors import AuthError, ClinicError

log = logging.getLogger(__name__)

SCOPE = "openid profile"
DISCOVERY_TTL_S = 3600
# RFC 7636 §4.1: 43-128 characters of the unreserved set.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


class OidcError(ClinicError):
    """The identity provider could not be reached or answered something unusable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def s256(verifier: str) -> str:
    """The S256 code challenge: BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> tuple[str, str]:
    """A fresh (code_verifier, code_challenge) pair; 48 random bytes give a 64-character verifier."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def pkce_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)


def basic_auth(client_id: str, client_secret: str) -> str:
    """client_secret_basic: both parts form-urlencoded before base64 (RFC 6749 §2.3.1)."""
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def check_id_token_claims(claims: dict[str, Any], *, nonce: str, client_id: str) -> None:
    """What remains after signature, iss, aud and exp (TokenVerifier): nonce and azp."""
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got, nonce):
        raise AuthError("nonce does not match this sign-in")
    aud = claims.get("aud")
    # OIDC Core §3.1.3.7 (4, 5): with several audiences, azp must name this client.
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise AuthError("azp does not name this client")
    if "iat" not in claims:
        raise AuthError("ID token has no iat")


@dataclass(frozen=True, slots=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    token_auth_methods: tuple[str, ...]

    @classmethod
    def parse(cls, doc: object, expected_issuer: str) -> Discovery:
        if not isinstance(doc, dict):
            raise OidcError("discovery document is not a JSON object")
        # Discovery §4.3: the issuer in the document must be exactly the one configured.
        if doc.get("issuer") != expected_issuer:
            raise OidcError(f"discovery names issuer {doc.get('issuer')!r}, expected {expected_issuer!r}")
        fields = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = doc.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise OidcError(f"discovery lacks {name}")
            fields[name] = value
        end = doc.get("end_session_endpoint")
        methods = doc.get("token_endpoint_auth_methods_supported")
        return cls(
            issuer=expected_issuer,
            end_session_endpoint=end if isinstance(end, str) and end else None,
            # Discovery §3: client_secret_basic is the default when the list is absent.
            token_auth_methods=tuple(m for m in methods if isinstance(m, str))
            if isinstance(methods, list)
            else ("client_secret_basic",),
            **fields,
        )


def authorization_url(
    disc: Discovery, *, client_id: str, redirect_uri: str, state: str, nonce: str, code_challenge: str
) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    sep = "&" if "?" in disc.authorization_endpoint else "?"
    return disc.authorization_endpoint + sep + urlencode(query)


def end_session_url(
    disc: Discovery, *, client_id: str, post_logout_redirect_uri: str, id_token_hint: str | None
) -> str | None:
    """RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2), when the IdP advertises it."""
    if disc.end_session_endpoint is None:
        return None
    query = {"client_id": client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
    if id_token_hint:
        query["id_token_hint"] = id_token_hint
    sep = "&" if "?" in disc.end_session_endpoint else "?"
    return disc.end_session_endpoint + sep + urlencode(query)


class OidcClient:
    """Discovery (cached for an hour) and the code exchange against one issuer."""

    def __init__(self, issuer: str, http: httpx.Client, *, cache_s: float = DISCOVERY_TTL_S) -> None:
        self.issuer = issuer
        self.http = http
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._disc: Discovery | None = None
        self._fetched_at = 0.0

    def discovery(self) -> Discovery:
        with self._lock:
            if self._disc is not None and time.monotonic() - self._fetched_at < self._cache_s:
                return self._disc
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            r = self.http.get(url)
        except httpx.HTTPError as err:
            raise OidcError(f"discovery unreachable: {type(err).__name__}") from err
        if r.status_code != 200:
            raise OidcError(f"discovery answered {r.status_code}")
        try:
            doc = r.json()
        except ValueError as err:
            raise OidcError("discovery is not JSON") from err
        disc = Discovery.parse(doc, self.issuer)
        with self._lock:
            self._disc, self._fetched_at = disc, time.monotonic()
        return disc

    def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str, client_id: str, client_secret: str | None
    ) -> dict[str, Any]:
        disc = self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": client_id,
        }
        headers = {"Accept": "application/json"}
        if client_secret:
            if "client_secret_basic" in disc.token_auth_methods or "client_secret_post" not in disc.token_auth_methods:
                headers["Authorization"] = basic_auth(client_id, client_secret)
            else:
                form["client_secret"] = client_secret
        try:
            r = self.http.post(disc.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as err:
            raise OidcError(f"token endpoint unreachable: {type(err).__name__}") from err
        try:
            body = r.json()
        except ValueError as err:
            raise OidcError(f"token endpoint answered {r.status_code} without JSON") from err
        if r.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise OidcError(f"token endpoint refused the code: {error or r.status_code}")
        return body
