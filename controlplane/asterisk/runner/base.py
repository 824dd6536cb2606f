"""What the runners share: cached credentials, ``cli`` via ``asterisk -rx``, the ARI check, the status."""

from __future__ import annotations

import subprocess
from pathlib import Path

from controlplane.asterisk.credentials import AsteriskCredentials, resolve_credentials
from controlplane.asterisk.runner.config_files import RenderedConfig
from controlplane.asterisk.runner.interface import AsteriskError, AsteriskStatus, describe
from controlplane.asterisk.runner.probes import probe_ari
from controlplane.config import Config


class RunnerBase:
    mode: str
    log_dir: Path | None = None
    etc_dir: Path | None = None

    # The whole configuration to start with (controlplane.asterisk.configuration); None: the
    # base templates plus the runner's extra files (tests' own instances).
    rendered: RenderedConfig | None = None

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._creds: AsteriskCredentials | None = None

    def moddir(self) -> str:
        """Asterisk's module directory as this instance sees it (Debian's build)."""
        from controlplane.asterisk.configuration import debian_moddir

        return debian_moddir()

    def credentials(self) -> AsteriskCredentials:
        if self._creds is None:
            self._creds = resolve_credentials(self.cfg)
        return self._creds

    def cli(self, command: str, timeout: float = 30.0) -> str:
        try:
            result = self._rx(command, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AsteriskError(f"asterisk -rx {command!r}: no answer in {timeout:.0f} s") from None
        if result.returncode != 0:
            raise AsteriskError(f"asterisk -rx {command!r} failed: {(result.stdout + result.stderr).strip()}")
        return result.stdout

    def _rx(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """``asterisk -rx command`` inside the instance (local and container runners)."""
        raise NotImplementedError

    def _probe_ari(self, timeout: float) -> tuple[int | None, str]:
        """``probe_ari`` against this instance with our credentials."""
        a, creds = self.cfg.asterisk, self.credentials()
        return probe_ari(a.host, a.http_port, creds.ari_user, creds.ari_password, timeout=timeout)

    def _status(self, running: bool, pid: int | None, ari: bool, uptime: float | None,
                extra: str) -> AsteriskStatus:
        a = self.cfg.asterisk
        return AsteriskStatus(running=running, pid=pid, mode=self.mode, instance=a.instance, host=a.host,
                              sip_port=a.sip_port, http_port=a.http_port, ami_port=a.ami_port, ari=ari,
                              uptime=uptime, log_dir=self.log_dir,
                              detail=describe(self.mode, running, pid, ari, uptime, self.cfg, extra))

