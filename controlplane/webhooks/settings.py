"""The webhooks section of the configuration, resolved once at start."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.config import Config, Mode
from controlplane.webhooks.targets import LOOPBACK, AllowList


@dataclass(frozen=True)
class Settings:
    """``production`` keeps http:// off (https only); the address rules apply in every mode.

    ``allow`` is the only way past them: ``webhooks.allow_targets``, plus loopback when a
    development config sets ``webhooks.allow_loopback``.
    """

    production: bool
    allow: AllowList
    timeout: float
    per_endpoint_concurrency: int
    max_concurrency: int

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        hooks = config.webhooks
        production = config.mode is Mode.PRODUCTION
        allowed = [*hooks.allow_targets, *(LOOPBACK if hooks.allow_loopback and not production else ())]
        return cls(production=production, allow=AllowList.parse(allowed),
                   timeout=hooks.timeout, per_endpoint_concurrency=max(1, hooks.per_endpoint_concurrency),
                   max_concurrency=max(1, hooks.max_concurrency))
