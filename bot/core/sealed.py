"""Secrets at rest (the Zalo OA token pair): Fernet under a key derived from the secret key.

A stolen database or backup then holds only ciphertext; without PAPIBOT_SECRET_KEY it does not
hand over the Official Account. Sealed values carry a prefix, so a value stored before sealing
existed (plain text) is recognised, read once and sealed again.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "fernet1:"
HKDF_INFO = b"papibot platform tokens v1"  # a key of its own: not the one that signs media links


class SealError(Exception):
    """A sealed value that this secret key cannot open (the key changed, or the value was altered)."""


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def seal(secret_key: str, plain: str) -> str:
    if not plain:
        return ""  # "no token" stays visible as such
    return PREFIX + _fernet(secret_key).encrypt(plain.encode("utf-8")).decode("ascii")


def unseal(secret_key: str, stored: str) -> str:
    """The plain value; a legacy plain-text value is returned as it is."""
    if not is_sealed(stored):
        return stored
    try:
        return _fernet(secret_key).decrypt(stored.removeprefix(PREFIX)).decode("utf-8")
    except InvalidToken:
        raise SealError(
            "a stored platform token cannot be decrypted: PAPIBOT_SECRET_KEY is not the one "
            "it was stored with"
        ) from None
