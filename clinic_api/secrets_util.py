"""One-time codes and gateway credentials: generated here, only hashes are stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# Mosquitto's password-file format for PBKDF2-SHA512 ("$7$iterations$salt$hash", base64),
# so region IT can export gateway credentials to the broker without re-hashing.
PBKDF2_ITERATIONS = 10_000


def new_enrollment_code() -> str:
    # 16 characters from an unambiguous alphabet, grouped for typing off a kit label.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalise_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def code_hash(code: str, pepper: str) -> str:
    # Codes are high-entropy and single use, so a keyed SHA-256 is enough (and lookup-able).
    return hmac.new(pepper.encode(), normalise_code(code).encode(), hashlib.sha256).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(24)


def password_hash(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    expected = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt_b64), int(iterations))
    return hmac.compare_digest(expected, base64.b64decode(digest_b64))
