"""Secrets encrypted at rest with AES-256-GCM.

The key comes from ``webhooks.secret_key`` (or the install secret), stretched
with HKDF; ``info`` separates its uses (webhook signing secrets, idempotency
replays), so one ciphertext never opens under another use's key. The row's
identity is the associated data, so a ciphertext copied onto another row does
not decrypt. Beside the keystore, not in a capability: webhooks, number ports and
HTTP's idempotency replays all seal with it.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from controlplane.config import Config
from controlplane.keystore import install_secret

_NONCE = 12
WEBHOOK_SECRETS = b"controlplane webhooks signing secrets v1"


class SecretBox:
    def __init__(self, key_material: str, info: bytes = WEBHOOK_SECRETS) -> None:
        if not key_material:
            raise ValueError("webhooks secret key is empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key_material.encode())
        self._aead = AESGCM(key)

    def seal(self, endpoint_id: str, secret: str) -> bytes:
        return self.seal_bytes(endpoint_id, secret.encode())

    def open(self, endpoint_id: str, sealed: bytes) -> str:
        """The secret; raises ``cryptography.exceptions.InvalidTag`` on a wrong key or row."""
        return self.open_bytes(endpoint_id, sealed).decode()

    def seal_bytes(self, row: str, data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, row.encode())

    def open_bytes(self, row: str, sealed: bytes) -> bytes:
        """The plaintext; raises ``cryptography.exceptions.InvalidTag`` on a wrong key or row."""
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], row.encode())


def secret_key(config: Config) -> str:
    """The key material that encrypts secrets at rest."""
    return config.webhooks.secret_key or install_secret(config.data_path, "webhooks_key", nbytes=32)
