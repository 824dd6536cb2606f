"""The edge's configuration is rendered from validated data only (controlplane.nodes.edge/kamailio_cfg)."""

from __future__ import annotations

import pytest

from controlplane.nodes.edge import EdgeInvalid, EdgeSettings, Node, failover_order, pg_target, stable_node
from controlplane.nodes.kamailio_cfg import render_dispatcher_list, render_kamailio_cfg

DSN = "postgresql://cp:secret@127.0.0.1:5432/controlplane"


def edge(**overrides: object) -> EdgeSettings:
    values: dict[str, object] = {"address": "10.0.0.2", "sip_port": 5060, "rpc_port": 5070,
                                 "database": pg_target(DSN), "carrier_sources": ("192.0.2.10",)}
    values.update(overrides)
    return EdgeSettings(**values)  # type: ignore[arg-type]


NODES = [Node("node-b", 2, "10.0.0.12", 5060), Node("node-a", 1, "10.0.0.11", 5060),
         Node("node-c", 3, "10.0.0.13", 5062)]


def test_each_nodes_set_lists_it_first_then_the_others_in_failover_order() -> None:
    lines = [line.split() for line in render_dispatcher_list(NODES).splitlines() if not line.startswith("#")]
    assert lines[:3] == [["1", "sip:10.0.0.11:5060", "0", "100", "node=node-a"],
                         ["1", "sip:10.0.0.12:5060", "0", "99", "node=node-b"],
                         ["1", "sip:10.0.0.13:5062", "0", "98", "node=node-c"]]
    assert [line[1] for line in lines if line[0] == "3"] == [
        "sip:10.0.0.13:5062", "sip:10.0.0.11:5060", "sip:10.0.0.12:5060"]
    assert [n.id for n in failover_order(NODES, NODES[0])] == ["node-b", "node-a", "node-c"]


def test_the_cfg_carries_the_validated_values_and_the_routing_rules() -> None:
    text = render_kamailio_cfg(edge(), "/usr/lib/x86_64-linux-gnu/kamailio/modules")
    assert "listen=udp:10.0.0.2:5060" in text and "listen=tcp:10.0.0.2:5070" in text
    assert 'postgres://cp:secret@127.0.0.1:5432/controlplane' in text
    assert '$si == "192.0.2.10"' in text
    assert 'ds_select_dst("$var(set)", "8")' in text and "add_path();" in text
    assert "dbtable=kamailio_tenant_routes" in text and "dbtable=kamailio_did_routes" in text
    # Probes and other requests give up on a silent node after 1 s, a call's INVITE after 4 s.
    assert 'modparam("tm", "fr_timer", 1000)' in text
    assert 'if (is_method("INVITE")) { t_set_fr(60000, 4000); }' in text
    assert 't_set_fr(60000, 2500)' in render_kamailio_cfg(edge(invite_timeout_ms=2500), "/m")
    # No carrier source: DID routing can never match (phones are still routed by prefix).
    assert "if ((0) &&" in render_kamailio_cfg(edge(carrier_sources=()), "/m")


@pytest.mark.parametrize(("overrides", "field"), [
    ({"address": "edge.example.com"}, "edge.address"),
    ({"address": "10.0.0.2\nlisten=udp:0.0.0.0:5060"}, "edge.address"),
    ({"sip_port": 0}, "edge.sip_port"),
    ({"rpc_port": 5060}, "edge.rpc_port"),
    ({"carrier_sources": ("192.0.2.1", "1.2.3.4; drop")}, "edge.carrier_sources[1]"),
    ({"work_dir": "/srv/x\"; y"}, "edge.work_dir"),
    ({"ping_interval": 0}, "edge.ping_interval"),
    ({"invite_timeout_ms": "4000); exit; #"}, "edge.invite_timeout_ms"),
])
def test_values_that_could_inject_config_are_refused_naming_the_field(overrides: dict[str, object],
                                                                       field: str) -> None:
    with pytest.raises(EdgeInvalid) as refused:
        edge(**overrides)
    assert refused.value.field == field


@pytest.mark.parametrize(("values", "field"), [
    (("Node-A", 1, "10.0.0.1", 5060), "id"),
    (("node-a]", 1, "10.0.0.1", 5060), "id"),
    (("node-a", 0, "10.0.0.1", 5060), "set_id"),
    (("node-a", 1, "10.0.0.1;lr", 5060), "sip_host"),
    (("node-a", 1, "10.0.0.1", 70000), "sip_port"),
])
def test_a_bad_node_is_refused_naming_the_field(values: tuple[str, int, str, int], field: str) -> None:
    with pytest.raises(EdgeInvalid) as refused:
        Node(*values)
    assert refused.value.field == field


def test_a_database_password_kamailio_cannot_carry_is_refused() -> None:
    with pytest.raises(EdgeInvalid) as refused:
        pg_target("postgresql://cp:se%22cret@127.0.0.1:5432/db")
    assert refused.value.field == "database.dsn"


def test_the_default_node_is_a_stable_hash_over_accepting_nodes() -> None:
    picks = [stable_node(f"ten_{i}", NODES).id for i in range(300)]
    assert picks == [stable_node(f"ten_{i}", list(reversed(NODES))).id for i in range(300)]  # order-free
    assert {p: picks.count(p) for p in set(picks)}.keys() == {"node-a", "node-b", "node-c"}
    closed = [Node("node-a", 1, "10.0.0.11", 5060, accepting=False), NODES[0]]
    assert {stable_node(f"ten_{i}", closed).id for i in range(50)} == {"node-b"}
    with pytest.raises(EdgeInvalid):
        stable_node("ten_1", [])
