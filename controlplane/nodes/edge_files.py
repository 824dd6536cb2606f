"""The edge's files from the database: ``kamailio.cfg`` and its dispatcher list (docs/scale.md)."""

from __future__ import annotations

from pathlib import Path

from controlplane.db.connection import Executor
from controlplane.nodes import store
from controlplane.nodes.edge import EdgeSettings
from controlplane.nodes.kamailio_cfg import CFG_FILE, DISPATCHER_FILE, render_dispatcher_list, render_kamailio_cfg

DEBIAN_MODDIR = "/usr/lib/x86_64-linux-gnu/kamailio/modules"


async def edge_files(db: Executor, edge: EdgeSettings, moddir: str = DEBIAN_MODDIR) -> dict[str, str]:
    nodes = await store.list_nodes(db)
    return {CFG_FILE: render_kamailio_cfg(edge, moddir), DISPATCHER_FILE: render_dispatcher_list(nodes)}


def write_edge_files(directory: Path, files: dict[str, str]) -> list[Path]:
    """Write them (private: the configuration carries the database password); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = directory / name
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o600)
        tmp.replace(path)
        written.append(path)
    return written
