"""The dialplan dials the trunk the config names (carrier.endpoint), not a fixed `carrier`."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from controlplane.config import CarrierConfig, Config
from controlplane.plugins import Context
from controlplane.tenants.applier import Applier
from controlplane.tenants.plugin import PLUGIN as TENANTS
from controlplane.calls.asterisk_files import carrier_pjsip_conf
from controlplane.http.app import make_app


async def test_applier_renders_the_configured_trunk(pool: asyncpg.Pool, tmp_path: Path) -> None:
    path = tmp_path / "extensions_tenants.conf"
    await Applier(pool, dialplan_path=path, trunk="upstream_a").apply_dialplan(force=True)
    text = path.read_text()
    assert "Dial(PJSIP/${EXTEN}@upstream_a," in text and "@carrier," not in text
    assert "[upstream_a]" in carrier_pjsip_conf(CarrierConfig(endpoint="upstream_a", host="127.0.0.1"))


async def test_tenants_plugin_passes_the_config_trunk(pool: asyncpg.Pool) -> None:
    context = Context(config=Config(carrier=CarrierConfig(endpoint="upstream_b")), pool=pool)
    make_app(service_token_value="t", probes=[], plugins=[TENANTS], context=context)
    appliers = [getattr(job, "__self__", None) for job in context.background]
    assert any(isinstance(a, Applier) and a.trunk == "upstream_b" for a in appliers)
