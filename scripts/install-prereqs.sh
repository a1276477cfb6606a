#!/usr/bin/env bash
# Installs what arena-deploy's CI and benchmark need on Debian 12: Docker engine, mmdebstrap, curl, OpenSSH (the remote-engine test), GNU time (the benchmark's peak RSS) and compose v2.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DEBIAN_FRONTEND=noninteractive

die() { echo "install-prereqs.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (try: sudo $0)"
# shellcheck source=/dev/null
. /etc/os-release 2>/dev/null || true
if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
  die "needs Debian 12 (bookworm), found ${PRETTY_NAME:-an unknown system}"
fi

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

missing=()
for pkg in ca-certificates curl docker.io mmdebstrap openssh-client openssh-server time; do
  if installed "$pkg"; then echo "$pkg: already present"; else missing+=("$pkg"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  for pkg in "${missing[@]}"; do echo "$pkg: installed"; done
fi

plugin_dir=/usr/local/lib/docker/cli-plugins
if docker compose version >/dev/null 2>&1; then
  echo "docker compose v2: already present ($(docker compose version --short))"
  exit 0
fi
# Debian 12 has only compose v1; trixie's docker-compose package carries v2 and runs on bookworm.
# Fetch it through a throwaway apt configuration so the machine's own sources and lists stay untouched.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
# apt downloads as the unprivileged _apt user; let it reach the throwaway folders.
chmod 0755 "$tmp" && chown _apt "$tmp/lists/partial" "$tmp/deb"
cat >"$tmp/trixie.sources" <<SOURCES
Types: deb
URIs: $("$here/debian-mirror.sh")
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_tmp=(-o "Dir::Etc::SourceList=$tmp/trixie.sources" -o Dir::Etc::SourceParts=/dev/null
         -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache")
apt-get "${apt_tmp[@]}" update -qq
(cd "$tmp/deb" && apt-get "${apt_tmp[@]}" download -qq docker-compose)
dpkg-deb -x "$tmp"/deb/docker-compose_*.deb "$tmp/root"
install -D -m 0755 "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
docker compose version >/dev/null 2>&1 || die "installed $plugin_dir/docker-compose but 'docker compose version' still fails"
echo "docker compose v2: installed ($(docker compose version --short))"
