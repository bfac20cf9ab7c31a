#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests use (PostgreSQL server, Chromium, Redis) when
# they are missing. Needs root (CI and the dev machines run as root); otherwise it only warns.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "warning: missing ${need[*]} (install them to run the PostgreSQL, UI and Celery tests)" >&2
  exit 0
fi
echo "installing ${need[*]} from Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
