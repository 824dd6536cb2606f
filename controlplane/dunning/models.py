"""The partner's dunning settings (the RPC's records; msgspec Structs)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec

Days = Annotated[int, msgspec.Meta(ge=0, le=365)]


class Policy(StrEnum):
    PARTNER = "partner"  # the partner's own days apply to every tenant
    PROFILE = "profile"  # each tenant's billing profile decides (7 / 14 without one)


class DunningSettingsBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    overdue_after_days: Days
    suspend_after_days: Days | None  # None: no automatic suspension (the partner suspends by hand)

    def __post_init__(self) -> None:
        if self.suspend_after_days is not None and self.suspend_after_days < self.overdue_after_days:
            raise ValueError("suspend_after_days must not come before overdue_after_days")


class DunningSettings(msgspec.Struct, kw_only=True):
    policy: Policy
    overdue_after_days: int | None  # None with the profile policy
    suspend_after_days: int | None
    updated_at: datetime | None
