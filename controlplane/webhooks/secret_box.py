"""Signing secrets encrypted at rest with AES-256-GCM.

The key comes from ``webhooks.secret_key`` (or the install secret), stretched
with HKDF; the endpoint id is the associated data, so a ciphertext copied onto
another endpoint's row does not decrypt.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE = 12
_INFO = b"controlplane webhooks signing secrets v1"


class SecretBox:
    def __init__(self, key_material: str) -> None:
        if not key_material:
            raise ValueError("webhooks secret key is empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key_material.encode())
        self._aead = AESGCM(key)

    def seal(self, endpoint_id: str, secret: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), endpoint_id.encode())

    def open(self, endpoint_id: str, sealed: bytes) -> str:
        """The secret; raises ``cryptography.exceptions.InvalidTag`` on a wrong key or row."""
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], endpoint_id.encode()).decode()
