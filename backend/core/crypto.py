"""Encryption at rest for secrets Backline must be able to read back (WebDAV passwords)."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backend.core.errors import BacklineError
from backend.core.settings import Settings


class UndecryptableSecret(BacklineError):
    code = "INTERNAL_SERVER_ERROR"


def _fernet(settings: Settings) -> Fernet:
    # A key of its own when given; else one derived from the secret key, so that
    # rotating the token-signing key needs no second secret to be configured.
    material = (settings.source_key or settings.resolved_secret_key).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"backline-secrets").derive(
        material
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plaintext: str, *, settings: Settings) -> str:
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str, *, settings: Settings) -> str:
    try:
        return _fernet(settings).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise UndecryptableSecret(
            "A stored password cannot be decrypted: the secret key changed. "
            "Enter the source's password again."
        ) from exc
