"""The metrics' names, their exposition, the live readers, and the dashboard's queries."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cdr_ingest.callflow import CallFlow, ChannelOpened, FlowConfig
from controlplane.metrics import families
from controlplane.metrics.live import Metrics
from controlplane.metrics.readers import calls_in_progress

DOCS = Path(__file__).resolve().parents[3] / "docs"


async def test_static_families_and_live_gauges_render_together() -> None:
    metrics = Metrics()
    metrics.gauge("controlplane_test_live", "A live gauge.", ("state",), lambda: [(("up",), 2.0)])
    metrics.gauge("controlplane_test_broken", "A reader that fails.", (), lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    before = (await metrics.render()).decode()
    families.admission("admitted", 0.0004)
    families.admission("monthly_spend", 0.0002)
    families.WEBHOOK_DELIVERED.inc()
    text = (await metrics.render()).decode()
    assert 'controlplane_test_live{state="up"} 2.0' in text
    assert "controlplane_test_broken" not in text  # skipped, the scrape still answers
    for name in ("controlplane_calls_recorded_total", "controlplane_call_record_lag_seconds",
                 "controlplane_admissions_total", "controlplane_admission_decision_seconds",
                 "controlplane_asterisk_reconnects_total", "controlplane_webhook_deliveries_total",
                 "controlplane_webhook_attempt_seconds", "controlplane_http_request_seconds"):
        assert f"# TYPE {name} " in text, name

    def value(body: str, sample: str) -> float:
        found = re.search(rf"^{re.escape(sample)} (\S+)$", body, re.M)
        return float(found[1]) if found else 0.0

    for sample, delta in (('controlplane_admissions_total{outcome="admitted"}', 1),
                          ('controlplane_admissions_total{outcome="monthly_spend"}', 1),
                          ("controlplane_admission_decision_seconds_count", 2),
                          ('controlplane_admission_decision_seconds_bucket{le="0.0005"}', 2),
                          ('controlplane_webhook_deliveries_total{result="delivered"}', 1)):
        assert value(text, sample) - value(before, sample) == delta, sample


def test_calls_in_progress_by_direction_and_class_as_the_record_will_say() -> None:
    from datetime import UTC, datetime

    flow = CallFlow(FlowConfig(trunk="carrier", inbound_context="from-carrier"))
    at = datetime.now(UTC)
    opened = [("c1", "PJSIP/acme_101-1", "18005550199", "acme"), ("c2", "PJSIP/acme_102-1", "14155550123", "acme"),
              ("c3", "PJSIP/acme_103-1", "102", "acme"), ("c4", "PJSIP/carrier-1", "+15015550101", "from-carrier")]
    for call_id, name, exten, context in opened:
        flow.feed(ChannelOpened(call_id=call_id, channel_id=call_id, name=name, exten=exten, context=context,
                                at=at, tenant_id="ten_1"))
    assert sorted(calls_in_progress(flow)) == [
        (("inbound", "local"), 1.0), (("internal", "internal"), 1.0), (("outbound", "local"), 1.0),
        (("outbound", "toll_free"), 1.0)]


def test_the_dashboard_queries_only_metrics_the_daemon_exports_and_the_docs_list_them_all() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    names = {"controlplane_calls_in_progress", "controlplane_asterisk_connected", "controlplane_webhook_queue_depth",
             "controlplane_email_queue_depth", "controlplane_db_pool_connections"}  # the live gauges
    series = set(names)
    for family in families.STATIC:
        name = family._name + ("_total" if family._type == "counter" else "")
        names.add(name)
        series |= {name} if family._type == "counter" else {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"controlplane_\w+", t["expr"])}
    assert used and used <= series, used - series
    documented = set(re.findall(r"`(controlplane_\w+)`", (DOCS / "operations.md").read_text()))
    assert names <= documented, names - documented
