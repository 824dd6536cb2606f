"""How tenant objects are named in Asterisk: built here, and parsed back only here.

Prefixes are ``[a-z0-9]{3,12}`` and numbers ``[0-9]{2,6}``: neither contains ``_``
or ``-``, so ``<prefix>_<number>`` and ``<prefix>-<role>`` can never collide
between two tenants - the namespace is structural, not conventional.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The shapes of a tenant's SIP prefix and of an extension number (provisioning.validate
# checks input against them). POSIX-compatible, so PostgreSQL's ``~`` reads them too.
PREFIX_PATTERN = "[a-z0-9]{3,12}"
NUMBER_PATTERN = "[0-9]{2,6}"
# A whole tenant endpoint (and AOR, and auth) name, anchored for SQL ``~`` (where "$" is
# the end of the string; Python's would also match before a final newline: fullmatch there).
_ENDPOINT = re.compile(f"({PREFIX_PATTERN})_({NUMBER_PATTERN})")
ENDPOINT_PATTERN = f"^{_ENDPOINT.pattern}$"
# Asterisk names a PJSIP channel ``PJSIP/<endpoint>-<sequence>``; neither part of a
# tenant endpoint holds a "-", so the first one ends it.
_CHANNEL = re.compile(f"^PJSIP/({PREFIX_PATTERN})_({NUMBER_PATTERN})-")

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


@dataclass(frozen=True, slots=True)
class TenantEndpoint:
    """A tenant phone's PJSIP endpoint, parsed from its name."""

    prefix: str
    number: str

    @property
    def name(self) -> str:
        return endpoint_name(self.prefix, self.number)


def endpoint_name(prefix: str, number: str) -> str:
    return f"{prefix}_{number}"


def parse_endpoint(name: str) -> TenantEndpoint | None:
    """``acme_101`` -> (acme, 101); None for any name that is not a tenant phone's."""
    found = _ENDPOINT.fullmatch(name)
    return TenantEndpoint(found[1], found[2]) if found else None


def channel_endpoint(channel: str) -> TenantEndpoint | None:
    """``PJSIP/acme_101-0000002a`` -> (acme, 101); None for a trunk's channel or anything else."""
    found = _CHANNEL.match(channel)
    return TenantEndpoint(found[1], found[2]) if found else None


def channel_extension(channel: str) -> str | None:
    """The extension number of a tenant phone's channel (``PJSIP/acme_101-0000002a`` -> ``101``)."""
    endpoint = channel_endpoint(channel)
    return endpoint.number if endpoint else None


def internal_context(prefix: str) -> str:
    return f"{prefix}-internal"


def outbound_context(prefix: str) -> str:
    return f"{prefix}-outbound"


def dial_context(prefix: str) -> str:
    """Outbound calls once their number is known (only ``<prefix>-outbound`` jumps there)."""
    return f"{prefix}-dial"


def inbound_context(prefix: str) -> str:
    return f"{prefix}-inbound"


def features_context(prefix: str) -> str:
    return f"{prefix}-features"


def voicemail_context(prefix: str) -> str:
    """The tenant's voicemail boxes (app_voicemail context): no other tenant's calls name it."""
    return f"{prefix}-vm"


def emergency_context(prefix: str) -> str:
    """911/933 of the tenant's phones (Kari's Law: reached whatever the tenant's status)."""
    return f"{prefix}-emergency"
