"""``kamailio.cfg`` and its dispatcher list, rendered from validated data (pure).

The routing logic (docs/scale.md, "Topology"):

- A request from a phone names its account in the From user, ``<prefix>_<number>``: the
  prefix is looked up in htable ``tenant`` (prefix -> dispatcher set of the tenant's node).
- A call from a carrier source to a DID is looked up in htable ``did`` (E.164 -> set).
- ``ds_select_dst(set, 8)``: the first *active* destination of the set, by priority. Each
  node's set lists the node first, then the others (``failover_order``): when probing
  marks a node down, its tenants' new calls and registrations go to the next one; a
  request that gets no answer at all is retried there at once (failure route).
- REGISTER gets a Path header (and ``Supported: path``, which Asterisk's registrar wants), so
  Asterisk reaches the phone back through the edge from any node (contacts are shared in
  PostgreSQL): its INVITE arrives with the Path as a pre-loaded Route, and is relayed to the
  phone's Contact only when it comes from a node (``ds_is_from_list``). NAT'd phones are not
  handled yet (``add_path_received`` + ``handle_ruri_alias`` would be the way).
- Other initial requests are record-routed: in-dialog requests follow the dialog to the
  node that took it, which is how a moved tenant drains.

Both tables are loaded from PostgreSQL views (migration 0028) at start and on
``htable.reload`` over JSON-RPC (the nodes plugin's sync); the dispatcher list from the
file rendered here, reloaded with ``dispatcher.reload``.
"""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.nodes.edge import EdgeSettings, Node, failover_order

DISPATCHER_FILE = "dispatcher.list"
CFG_FILE = "kamailio.cfg"
TENANT_TABLE = "tenant"
DID_TABLE = "did"
MODULES = ("jsonrpcs", "kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "textops", "siputils",
           "xlog", "sanity", "path", "htable", "db_postgres", "dispatcher", "xhttp")
_PRIORITY_HOME = 100
FINAL_REPLY_TIMEOUT_MS = 60000  # tm's fr_inv_timer: a ringing call's wait for its final answer


def render_dispatcher_list(nodes: Sequence[Node]) -> str:
    """One set per node: the node at the top priority, the others below in failover order."""
    lines = ["# Rendered by the control plane from its nodes table: set = a node's tenants.",
             "# setid destination flags priority attributes"]
    for home in sorted(nodes, key=lambda n: n.set_id):
        for rank, node in enumerate(failover_order(list(nodes), home)):
            lines.append(f"{home.set_id} {node.sip_uri} 0 {_PRIORITY_HOME - rank} node={node.id}")
    return "\n".join(lines) + "\n"


def _carrier_test(sources: Sequence[str]) -> str:
    if not sources:
        return "0"
    return " || ".join(f'$si == "{address}"' for address in sources)


def render_kamailio_cfg(edge: EdgeSettings, moddir: str) -> str:
    """The whole configuration; ``moddir`` is Kamailio's module directory (Debian's path)."""
    db = edge.database
    db_url = f"postgres://{db.user}:{db.password}@{db.host}:{db.port}/{db.database}"
    loads = "\n".join(f'loadmodule "{name}.so"' for name in MODULES)
    return f"""#!KAMAILIO
# Rendered by the control plane (controlplane/nodes/kamailio_cfg.py): do not edit.
debug=2
log_stderror=yes
fork=yes
children={edge.children}
tcp_children=2
auto_aliases=no
tcp_accept_no_cl=yes
listen=udp:{edge.address}:{edge.sip_port}
listen=tcp:{edge.address}:{edge.sip_port}
listen=tcp:{edge.address}:{edge.rpc_port}
alias={edge.address}:{edge.sip_port}
mpath="{moddir}"
{loads}

modparam("jsonrpcs", "transport", 1)
modparam("xhttp", "url_skip", "^/metrics")
modparam("tm", "fr_timer", {edge.reply_timeout_ms})
modparam("tm", "fr_inv_timer", {FINAL_REPLY_TIMEOUT_MS})
modparam("rr", "enable_full_lr", 1)
modparam("htable", "db_url", "{db_url}")
modparam("htable", "htable", "{TENANT_TABLE}=>size=12;dbtable=kamailio_tenant_routes;")
modparam("htable", "htable", "{DID_TABLE}=>size=12;dbtable=kamailio_did_routes;")
modparam("dispatcher", "list_file", "{edge.work_dir}/etc/{DISPATCHER_FILE}")
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:edge@{edge.address}")
modparam("dispatcher", "ds_ping_interval", {edge.ping_interval})
modparam("dispatcher", "ds_probing_threshold", {edge.threshold})
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_probing_mode", 1)
# Alive: a 2xx, or a refusal only a running Asterisk sends (never tm's own 408 on no answer).
modparam("dispatcher", "ds_ping_reply_codes", "class=2;code=401;code=403;code=404;code=405")
modparam("dispatcher", "flags", 2)

request_route {{
    if ($Rp == {edge.rpc_port}) {{ drop; }}
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (!sanity_check("17895", "7")) {{ exit; }}
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{ sl_send_reply("200", "OK"); exit; }}
    if (has_totag()) {{ route(IN_DIALOG); exit; }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (!is_method("ACK")) {{ t_check_trans(); }}
    # A node reaching a phone through the Path it registered with (a pre-loaded Route to us):
    # on to the phone. Only nodes may have the edge relay to an address they name.
    if (uri != myself && ds_is_from_list()) {{
        remove_hf("Route");
        record_route();
        route(RELAY);
    }}
    route(TENANT);
    if (is_method("REGISTER")) {{
        if (!search_hf("Supported", "path", "a")) {{ insert_hf("Supported: path\\r\\n"); }}
        add_path();
    }} else {{
        record_route();
    }}
    route(DISPATCH);
}}

# $var(set): the dispatcher set of the tenant's node, from the phone's prefix or the DID.
route[TENANT] {{
    if ($fU =~ "^[a-z0-9]{{3,12}}_[0-9]{{2,6}}$") {{
        $var(prefix) = $(fU{{s.select,0,_}});
        if ($sht({TENANT_TABLE}=>$var(prefix)) == $null) {{
            sl_send_reply("404", "Unknown tenant"); exit;
        }}
        $var(set) = $sht({TENANT_TABLE}=>$var(prefix));
        return;
    }}
    if (({_carrier_test(edge.carrier_sources)}) && $rU =~ "^\\+?[1-9][0-9]{{6,14}}$") {{
        $var(did) = $rU;
        if (!($var(did) =~ "^\\+")) {{ $var(did) = "+" + $rU; }}
        if ($sht({DID_TABLE}=>$var(did)) != $null) {{
            $var(set) = $sht({DID_TABLE}=>$var(did));
            return;
        }}
    }}
    sl_send_reply("404", "Not Found"); exit;
}}

route[DISPATCH] {{
    if (!ds_select_dst("$var(set)", "8")) {{ sl_send_reply("503", "No node available"); exit; }}
    xlog("L_INFO", "edge: $rm $fU -> $rU via set $var(set) to $du\\n");
    if (is_method("INVITE")) {{ t_set_fr({FINAL_REPLY_TIMEOUT_MS}, {edge.invite_timeout_ms}); }}
    t_on_failure("NODE_FAILED");
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{ sl_reply_error(); }}
    exit;
}}

route[IN_DIALOG] {{
    if (loose_route()) {{ route(RELAY); }}
    if (is_method("ACK")) {{ if (t_check_trans()) {{ route(RELAY); }} exit; }}
    sl_send_reply("404", "Not here"); exit;
}}

# No answer at all from the node (not a busy or unanswered callee): it is down; next node.
failure_route[NODE_FAILED] {{
    if (t_is_canceled()) {{ exit; }}
    if (t_branch_timeout() && !t_branch_replied()) {{
        ds_mark_dst("ip");
        if (ds_next_dst()) {{
            xlog("L_WARN", "edge: node down, $rm $fU retried at $du\\n");
            t_on_failure("NODE_FAILED");
            t_relay();
        }}
    }}
}}

event_route[xhttp:request] {{
    if ($Rp == {edge.rpc_port} && $hu =~ "^/RPC") {{ jsonrpc_dispatch(); exit; }}
    xhttp_reply("403", "Forbidden", "text/plain", "");
}}
"""
