"""ARI and AMI credentials: from config when set, else generated once per install.

Generated passwords are install secrets (``controlplane.keystore``):
``<data_dir>/secrets/ari_password`` and ``ami_password``, mode 0600, reused by
every later start, so the daemon, the CLI and the rendered Asterisk
configuration always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.config import Config
from controlplane.keystore import install_secret


@dataclass(frozen=True)
class AsteriskCredentials:
    ari_user: str
    ari_password: str
    ami_user: str
    ami_password: str

    def __repr__(self) -> str:  # never print secrets in logs or test output
        return f"AsteriskCredentials(ari_user={self.ari_user!r}, ami_user={self.ami_user!r})"


def resolve_credentials(cfg: Config) -> AsteriskCredentials:
    """Configured values win; missing passwords are the install's own secrets."""
    a = cfg.asterisk

    def password(configured: str | None, name: str) -> str:
        return configured if configured is not None else install_secret(cfg.data_path, name)

    return AsteriskCredentials(a.ari_user, password(a.ari_password, "ari_password"),
                               a.ami_user, password(a.ami_password, "ami_password"))
