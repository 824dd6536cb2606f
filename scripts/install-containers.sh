#!/usr/bin/env bash
# Installs what the compose path (compose/docker-compose.yml) needs on a Debian
# host, idempotently: podman, runc and catatonit (`init: true`) from Debian.
# podman-compose comes from PyPI with the project's test extra (.venv/bin):
# Debian 12's 1.0.3 cannot run `network_mode: host` services.
# Podman is pointed at the project's compose/containers.conf through
# CONTAINERS_CONF by whoever runs it (the compose test does); /etc is not touched.
set -euo pipefail

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null 2>&1 || missing+=(catatonit)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: Debian packages ${missing[*]}"
  apt-get update -qq
  # No recommends: they bring crun (which fails where runc works) and rootless helpers.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
