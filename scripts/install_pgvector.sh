#!/usr/bin/env bash
# Install PostgreSQL 15 and the pgvector extension from Debian, for the pgvector tests
# (tests/test_vectordb_pgvector.py) and `sentencekit index export --to postgresql://...`.
#
#   sudo bash scripts/install_pgvector.sh
#
# Debian bookworm ships postgresql-15 but no pgvector package, so pgvector is built from Debian trixie's
# source package (`apt-get source pgvector`, 0.8.x) against bookworm's postgresql-server-dev-15.
# Idempotent: does nothing when vector.control is already installed. Needs root and apt; without them it
# says so and exits 0 (the pgvector tests then skip, except under CI=true, where they fail).
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
TRIXIE_SRC="/etc/apt/sources.list.d/trixie-src.list"

have_vector() {
  [ -x "$PG_CONFIG" ] && [ -f "$("$PG_CONFIG" --sharedir)/extension/vector.control" ]
}

if have_vector; then
  echo "[pgvector] already installed: $("$PG_CONFIG" --sharedir)/extension/vector.control" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[pgvector] skipped: no apt-get here. Install PostgreSQL $PG_MAJOR and pgvector yourself" \
       "(https://github.com/pgvector/pgvector#installation); the pgvector tests skip without them." >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "[pgvector] skipped: installing PostgreSQL/pgvector needs root (run: sudo bash $0);" \
       "the pgvector tests skip without them." >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
work="$(mktemp -d)"
cleanup() {
  rm -rf "$work"
  if [ -n "${own_policy:-}" ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT
# Installing postgresql-15 must not start Debian's system cluster: the tests start their own server.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  own_policy=1
fi
apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq >&2
    apt_updated=1
  fi
}

if ! dpkg -s "postgresql-$PG_MAJOR" >/dev/null 2>&1; then
  echo "[pgvector] installing postgresql-$PG_MAJOR" >&2
  apt_update
  apt-get install -y -qq --no-install-recommends "postgresql-$PG_MAJOR" >&2
fi
# The build needs the server headers and PGXS of the same major version, and a compiler.
missing=()
for pkg in "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[pgvector] installing ${missing[*]}" >&2
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# Source packages only from trixie (no binaries: they would pull trixie's libc).
if ! grep -rqs "^deb-src .*trixie" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb-src http://deb.debian.org/debian trixie main" > "$TRIXIE_SRC"
  apt_updated=0
fi
apt_update

cd "$work"
echo "[pgvector] fetching Debian trixie's pgvector source package" >&2
apt-get source -qq --download-only pgvector >&2
dpkg-source -x --no-check ./pgvector_*.dsc src >&2
cd src
echo "[pgvector] building against $("$PG_CONFIG" --version)" >&2
make -s USE_PGXS=1 PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >&2
make -s USE_PGXS=1 PG_CONFIG="$PG_CONFIG" install >&2
if ! have_vector; then
  echo "[pgvector] ERROR: the build finished but vector.control is not in $("$PG_CONFIG" --sharedir)/extension" >&2
  exit 1
fi
echo "[pgvector] installed pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" \
  "$("$PG_CONFIG" --sharedir)/extension/vector.control")" >&2
