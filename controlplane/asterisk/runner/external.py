"""The external runner: someone else runs Asterisk; status probes ARI, ``cli`` goes through AMI."""

from __future__ import annotations

import time
from pathlib import Path

from controlplane.asterisk.runner.base import RunnerBase
from controlplane.asterisk.runner.interface import AsteriskError, AsteriskStatus
from controlplane.asterisk.runner.probes import ami_command
from controlplane.config import Config


class ExternalRunner(RunnerBase):
    """Someone else runs Asterisk: up() only waits for ARI; cli() goes through AMI."""

    mode = "external"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        # The instance directory shared with Asterisk (asterisk.config_dir), if the operator shares one.
        shared = cfg.asterisk.config_dir
        self.instance_dir: Path | None = Path(shared).expanduser().resolve() if shared else None
        self.etc_dir: Path | None = self.instance_dir / "etc" if self.instance_dir else None
        self.log_dir: Path | None = self.instance_dir / "log" if self.instance_dir else None

    def up(self) -> AsteriskStatus:
        a = self.cfg.asterisk
        deadline = time.monotonic() + a.boot_timeout
        while True:
            code, why = self._probe_ari(timeout=2.0)
            if code == 200:
                return self.status()
            if code == 401:
                raise AsteriskError(f"external Asterisk at {a.host}:{a.http_port} "
                                    "refuses our ARI credentials")
            if time.monotonic() >= deadline:
                raise AsteriskError(f"external Asterisk: ARI at http://{a.host}:{a.http_port} not answering "
                                    f"within {a.boot_timeout:.0f} s ({code or why})")
            time.sleep(0.2)

    def down(self) -> None:
        """Not ours to stop."""

    def kill(self) -> None:
        raise AsteriskError("external Asterisk: not ours to kill")

    def status(self) -> AsteriskStatus:
        code, why = self._probe_ari(timeout=1.0)
        running = code == 200
        return self._status(running, None, running, None, "" if running else f" (ARI: {code or why})")

    def cli(self, command: str, timeout: float = 30.0) -> str:
        a, creds = self.cfg.asterisk, self.credentials()
        return ami_command(a.host, a.ami_port, creds.ami_user, creds.ami_password, command, timeout=timeout)
