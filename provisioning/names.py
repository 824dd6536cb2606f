"""How tenant objects are named in Asterisk.

Prefixes are ``[a-z0-9]{3,12}`` and numbers ``[0-9]{2,6}``: neither contains ``_``
or ``-``, so ``<prefix>_<number>`` and ``<prefix>-<role>`` can never collide
between two tenants - the namespace is structural, not conventional.
"""

from __future__ import annotations

# Digest realm of every tenant auth; part of the stored HA1, so never change it.
REALM = "controlplane"
FROM_CARRIER = "from-carrier"
NOT_CONFIGURED = "cp-not-configured"
SUSPENDED = "cp-suspended"
CARRIER_OUT = "cp-carrier-out"
# Sounds shipped with Asterisk's core sounds (checked in the Debian rootfs).
SOUND_SUSPENDED = "ss-noservice"
SOUND_NOT_CONFIGURED = "cannot-complete-as-dialed"
# Kari's Law: direct emergency dialing is never blocked (suspension included).
EMERGENCY_NUMBERS = ("911", "933")


def endpoint_name(prefix: str, number: str) -> str:
    return f"{prefix}_{number}"


def internal_context(prefix: str) -> str:
    return f"{prefix}-internal"


def outbound_context(prefix: str) -> str:
    return f"{prefix}-outbound"


def inbound_context(prefix: str) -> str:
    return f"{prefix}-inbound"


def features_context(prefix: str) -> str:
    return f"{prefix}-features"
