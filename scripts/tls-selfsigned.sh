#!/usr/bin/env bash
# Writes self-signed certificates in certbot's layout so that nginx can start before real
# certificates exist (and for scripts/check-deploy.sh).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/tls-selfsigned.sh [--domain DOMAIN] [--dir DIR] [--days N] [--force] [--all]

For the subdomain of every service that COMPOSE_PROFILES enables (vk.DOMAIN for vk, tg.DOMAIN
for telegram, okdesk., amocrm., messenger.; NGINX_SITES when set, as nginx reads it) writes
DIR/live/<name>/fullchain.pem and privkey.pem, a self-signed certificate, and a .selfsigned
marker beside them. Existing certificates are kept unless --force.
  --domain DOMAIN   default: DOMAIN from the environment or .env
  --dir DIR         default: TLS_CERTS_DIR from the environment or .env, else ./deploy/certs
  --days N          validity, default 30
  --all             every service's subdomain, enabled or not
The `tls` profile's certbot replaces a marked placeholder with a Let's Encrypt certificate
(docs/operations.md, «TLS certificates»); do that before VK, Chatwoot, Telegram, Okdesk or
amoCRM are pointed at the gateway: none of them accepts a self-signed certificate.
USAGE
}

domain=$(env_get DOMAIN)
dir=$(env_get TLS_CERTS_DIR)
dir=${dir:-./deploy/certs}
days=30
force=0
all=0
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --domain) domain=${2:?}; shift ;;
    --dir) dir=${2:?}; shift ;;
    --days) days=${2:?}; shift ;;
    --force) force=1 ;;
    --all) all=1 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ -n $domain ]] || die "no domain: pass --domain or set DOMAIN in .env"
have openssl || apt_install openssl
[[ $dir == /* ]] || dir=$REPO_ROOT/${dir#./}

sites=$(env_get NGINX_SITES)
wanted=()
for entry in "${GATEWAY_SERVICES[@]}"; do
  IFS=: read -r svc _ sub _ _ <<<"$entry"
  if [[ $all -eq 1 ]]; then
    wanted+=("$sub")
  elif [[ -n $sites ]]; then
    grep -qxF -- "$sub" <<<"${sites//[, ]/$'\n'}" && wanted+=("$sub")
  elif service_enabled "$svc"; then
    wanted+=("$sub")
  fi
done
[[ ${#wanted[@]} -gt 0 ]] || die "no service enabled: set COMPOSE_PROFILES in .env (or pass --all)"

for sub in "${wanted[@]}"; do
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
  # certbot.sh (the tls profile) replaces a certificate so marked
  echo "scripts/tls-selfsigned.sh" >"$out/.selfsigned"
  info "$name: self-signed certificate written to $out"
done
