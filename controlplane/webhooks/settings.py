"""The webhooks section of the configuration, resolved once at start."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.config import Config, Mode
from controlplane.keystore import install_secret
from controlplane.webhooks.targets import AllowList


@dataclass(frozen=True)
class Settings:
    production: bool
    allow: AllowList
    timeout: float
    per_endpoint_concurrency: int
    max_concurrency: int

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        hooks = config.webhooks
        return cls(production=config.mode is Mode.PRODUCTION, allow=AllowList.parse(hooks.allow_targets),
                   timeout=hooks.timeout, per_endpoint_concurrency=max(1, hooks.per_endpoint_concurrency),
                   max_concurrency=max(1, hooks.max_concurrency))


def secret_key(config: Config) -> str:
    """The key material that encrypts signing secrets at rest."""
    return config.webhooks.secret_key or install_secret(config.data_path, "webhooks_key", nbytes=32)
