"""Run Asterisk for the control plane: a local root filesystem, a container, or someone else's.

Three ways, one synchronous API (the CLI and pytest call it directly; the daemon
through ``asyncio.to_thread``):

- ``local`` (``local.py``): the Debian root filesystem built by ``asterisk/build-rootfs.sh``,
  ``chroot``-ed. Each instance owns ``<rootfs>/srv/controlplane/<instance>/``
  (``etc run log spool db``), so a developer's daemon and test runs share one
  root filesystem on different ports.
- ``container`` (``container.py``): the image from ``asterisk/Dockerfile`` with host
  networking; the instance directory is bind-mounted from
  ``<data_dir>/asterisk/instances/<instance>``.
- ``external`` (``external.py``): nothing is started; status probes ARI, ``cli`` goes through AMI.

``auto`` (the default) picks ``container`` when a Docker engine answers, else ``local``.

The configuration is rendered from the templates in ``asterisk/etc/`` (package data,
``config_files.py``); the whole of it by ``controlplane.asterisk.configuration``.
"""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.asterisk.runner.config_files import (
    INSTANCE_ROOT, SEED_ONLY, RenderedConfig, base_templates, recipe_dir, render, render_config,
    template_values, write_config,
)
from controlplane.asterisk.runner.container import IMAGE, ContainerRunner
from controlplane.asterisk.runner.external import ExternalRunner
from controlplane.asterisk.runner.instance import INSTANCE_SUBDIRS, STOP_TIMEOUT
from controlplane.asterisk.runner.interface import AsteriskError, AsteriskRunner, AsteriskStatus
from controlplane.asterisk.runner.local import LocalRunner
from controlplane.asterisk.runner.probes import ami_command, docker_available, probe_ari
from controlplane.asterisk.runner.rootfs import default_rootfs
from controlplane.config import AsteriskRunMode, Config

__all__ = [
    "IMAGE", "INSTANCE_ROOT", "INSTANCE_SUBDIRS", "SEED_ONLY", "STOP_TIMEOUT",
    "AsteriskError", "AsteriskRunner", "AsteriskStatus", "ContainerRunner", "ExternalRunner", "RenderedConfig",
    "base_templates",
    "LocalRunner", "ami_command", "default_rootfs", "docker_available", "probe_ari", "recipe_dir",
    "render", "render_config", "runner_for", "template_values", "write_config",
]


def runner_for(cfg: Config, *, extra_files: Mapping[str, str] | None = None,
               rendered: RenderedConfig | None = None) -> AsteriskRunner:
    """The runner ``cfg.asterisk.run`` asks for (``auto``: container if Docker answers, else local).

    ``rendered`` is the whole configuration (``controlplane.asterisk.configuration``): what
    the daemon and the CLI start Asterisk with. Without it (tests' own instances) the
    base templates are rendered with ``extra_files`` beside them (same placeholders),
    e.g. ``pjsip_extra.conf``, which ``pjsip.conf`` includes when present. An external
    Asterisk ignores both: its configuration is written by the daemon (``config_dir``).
    """
    mode = cfg.asterisk.run
    if mode == AsteriskRunMode.AUTO:
        mode = AsteriskRunMode.CONTAINER if docker_available() else AsteriskRunMode.LOCAL
    if mode == AsteriskRunMode.LOCAL:
        return LocalRunner(cfg, extra_files=extra_files, rendered=rendered)
    if mode == AsteriskRunMode.CONTAINER:
        return ContainerRunner(cfg, extra_files=extra_files, rendered=rendered)
    return ExternalRunner(cfg)
