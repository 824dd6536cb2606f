"""One tier enum (cdr_ingest.tiers.Tier): the values partners are stored and shown with."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec

import controlplane.db.migrations as migrations
from cdr_ingest.classify import CallClass, Direction
from cdr_ingest.tiers import DEFAULT_SCHEDULE, Tier, wholesale_rate
from controlplane.numbers.pricing import price
from controlplane.tenants.models import Partner, PartnerCreate, PartnerTier
from controlplane.tenants.services import max_extensions

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def test_the_enum_is_what_the_database_stores() -> None:
    core = (Path(migrations.__file__).parent / "0001_core.sql").read_text()
    check = re.search(r"tier\s+text NOT NULL CHECK \(tier IN \(([^)]*)\)\)", core)
    assert check is not None
    assert [v.strip(" '") for v in check[1].split(",")] == [t.value for t in Tier]


def test_the_rpc_speaks_the_same_enum() -> None:
    assert PartnerTier is Tier
    body = msgspec.json.decode(b'{"name": "P", "tier": "PROFESSIONAL"}', type=PartnerCreate)
    assert body.tier is Tier.PROFESSIONAL
    partner = Partner(id="ptr_1", name="P", tier=Tier.BUSINESS, extension_count=0, max_extensions=None,
                      created_at=NOW, updated_at=NOW)
    assert b'"tier":"BUSINESS"' in msgspec.json.encode(partner)


def test_stored_values_reach_prices_without_translation() -> None:
    starter = DEFAULT_SCHEDULE.prices_at(Tier("STARTER"), NOW)
    assert starter is not None and max_extensions(Tier("STARTER")) == starter.max_extensions == 300
    assert price("STARTER", "local", NOW).monthly == starter.did_local_monthly


def test_rate_ids_already_recorded_keep_their_spelling() -> None:
    rate = wholesale_rate(Tier.PROFESSIONAL, CallClass.LOCAL, Direction.OUTBOUND, NOW)
    assert rate is not None and rate.rate_id == "tier:professional:local:outbound"
