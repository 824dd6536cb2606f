#!/bin/sh
# Container entrypoint: renders the project's Asterisk templates (baked into the
# image at /opt/controlplane/asterisk-etc) into the instance directory, with the
# same {{placeholders}} the local runner fills, taken from the control plane's
# own configuration variables (CONTROLPLANE_ASTERISK__*), then runs Asterisk in
# the foreground (PID 1's child under `--init`; logs to `docker logs`).
set -eu

instance="${CONTROLPLANE_ASTERISK__INSTANCE:-default}"
case "$instance" in
  "" | *[!A-Za-z0-9_]*) echo "CONTROLPLANE_ASTERISK__INSTANCE: letters, digits and _ only" >&2; exit 64 ;;
esac
dir="/srv/controlplane/$instance"
moddir=$(ls -d /usr/lib/*/asterisk/modules | head -n 1)

export CP_instance="$instance" CP_instance_dir="$dir" CP_moddir="$moddir"
export CP_sip_port="${CONTROLPLANE_ASTERISK__SIP_PORT:-5060}"
export CP_http_port="${CONTROLPLANE_ASTERISK__HTTP_PORT:-8088}"
export CP_ami_port="${CONTROLPLANE_ASTERISK__AMI_PORT:-5038}"
export CP_ari_user="${CONTROLPLANE_ASTERISK__ARI_USER:-controlplane}"
export CP_ami_user="${CONTROLPLANE_ASTERISK__AMI_USER:-controlplane}"
export CP_ari_password="${CONTROLPLANE_ASTERISK__ARI_PASSWORD:?set CONTROLPLANE_ASTERISK__ARI_PASSWORD}"
export CP_ami_password="${CONTROLPLANE_ASTERISK__AMI_PASSWORD:?set CONTROLPLANE_ASTERISK__AMI_PASSWORD}"
export CP_app="${CONTROLPLANE_ASTERISK__APP:-controlplane}"

# Values go into Asterisk config lines: ';' starts a comment, brackets a section.
for name in instance_dir moddir sip_port http_port ami_port ari_user ami_user ari_password ami_password app; do
  value=$(printenv "CP_$name")
  case "$value" in
    "" | *[\;\[\]\ \	\"\'\\]*) echo "asterisk.$name: empty, or contains whitespace, quotes, ';', '[', ']' or '\\'" >&2; exit 64 ;;
  esac
done

mkdir -p "$dir/etc" "$dir/run" "$dir/log" "$dir/spool/cache" "$dir/db"
chmod 0700 "$dir"
for template in /opt/controlplane/asterisk-etc/*.conf; do
  name=$(basename "$template")
  target="$dir/etc/$name"
  # Owned by the daemon after the first start (same list as runner.SEED_ONLY).
  case "$name" in
    extensions_tenants.conf | res_pgsql.conf) [ -e "$target" ] && continue ;;
  esac
  # perl-base is Essential in Debian: safe substitution of any value.
  perl -pe 's/\{\{\s*([a-z_]+)\s*\}\}/exists $ENV{"CP_$1"} ? $ENV{"CP_$1"} : die "$ARGV: unknown placeholder {{$1}}\n"/ge' \
    "$template" >"$target.tmp"
  chmod 0600 "$target.tmp"
  mv "$target.tmp" "$target"
done

# A container killed earlier leaves its control socket and pid file behind.
rm -f "$dir/run/asterisk.ctl" "$dir/run/asterisk.pid"
# Plain `asterisk -rx ...` (healthcheck, docker exec) finds this instance.
ln -sf "$dir/etc/asterisk.conf" /etc/asterisk/asterisk.conf

exec /usr/sbin/asterisk -C "$dir/etc/asterisk.conf" -f -n "$@"
