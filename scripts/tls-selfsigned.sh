#!/usr/bin/env bash
# Writes self-signed certificates in certbot's layout so that nginx can start before real
# certificates exist (and for scripts/check-deploy.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/tls-selfsigned.sh [--domain DOMAIN] [--dir DIR] [--days N] [--force]

For every service subdomain (vk.DOMAIN, …) writes DIR/live/<name>/fullchain.pem and privkey.pem,
a self-signed certificate. Existing certificates are kept unless --force.
  --domain DOMAIN   default: DOMAIN from the environment or .env
  --dir DIR         default: TLS_CERTS_DIR from the environment or .env, else ./deploy/certs
  --days N          validity, default 30
Replace them with real ones (certbot, see docs/operations.md) before VK and Chatwoot are pointed
at the gateway: neither accepts a self-signed certificate.
USAGE
}

domain=$(env_get DOMAIN)
dir=$(env_get TLS_CERTS_DIR)
dir=${dir:-./deploy/certs}
days=30
force=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --domain) domain=${2:?}; shift ;;
    --dir) dir=${2:?}; shift ;;
    --days) days=${2:?}; shift ;;
    --force) force=1 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ -n $domain ]] || die "no domain: pass --domain or set DOMAIN in .env"
have openssl || apt_install openssl
[[ $dir == /* ]] || dir=$REPO_ROOT/${dir#./}

for entry in "${GATEWAY_SERVICES[@]}"; do
  IFS=: read -r _ _ sub _ <<<"$entry"
  name="$sub.$domain"
  out="$dir/live/$name"
  if [[ -s $out/fullchain.pem && -s $out/privkey.pem && $force -eq 0 ]]; then
    info "$name: certificate exists, kept ($out)"
    continue
  fi
  mkdir -p "$out"
  openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -days "$days" -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
    -keyout "$out/privkey.pem" -out "$out/fullchain.pem" 2>/dev/null
  chmod 600 "$out/privkey.pem"
  info "$name: self-signed certificate written to $out"
done
