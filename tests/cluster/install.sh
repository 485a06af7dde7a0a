#!/usr/bin/env bash
# Install the Debian packages of a single-node SLURM cluster with accounting (SLURM 22.05 on Debian 12).
# Idempotent: packages already installed are not touched, and `apt-get update` runs only when some are missing.
# The install does not start any service (a temporary policy-rc.d forbids it); tests/cluster/start.sh does.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client slurm-wlm-basic-plugins slurmdbd munge mariadb-server)

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: must run as root" >&2
  exit 2
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
  echo "install.sh: needs a Debian-like system (apt-get, dpkg-query)" >&2
  exit 2
fi

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install.sh: all SLURM packages already installed"
  exit 0
fi

echo "install.sh: installing ${missing[*]}"
# no daemon may start from a package's postinst (there is no init system; start.sh starts them by hand)
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt_options=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
apt-get "${apt_options[@]}" update -qq
apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${missing[@]}"
echo "install.sh: done"
