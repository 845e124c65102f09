#!/bin/sh
# The server blocks nginx serves: one per enabled service, rendered from
# nginx/conf.d/<subdomain>.conf.template. Mounted into the nginx container as
# /usr/local/bin/gateway-sites (and into certbot's, which asks it for the names), run by
# nginx/entrypoint.d/15-gateway-sites.sh at start. POSIX sh: the nginx image is Alpine.
#
#   gateway-sites names        the enabled subdomains, one per line (vk, tg, …)
#   gateway-sites render       writes $GATEWAY_CONF_DIR/default.conf and <sub>.conf for every
#                              enabled subdomain that has its certificate; one without is left
#                              out (its name then gets no TLS handshake) and named on stderr
#   gateway-sites check-once   renders again and runs `nginx -s reload` when the certificates
#                              changed since the last look (a new or renewed one)
#   gateway-sites watch        check-once every $TLS_RELOAD_CHECK_SECS seconds, forever
#
# Environment:
#   DOMAIN             base domain (vk.$DOMAIN, …); required
#   COMPOSE_PROFILES   the compose profiles of .env: vk -> vk, telegram -> tg, okdesk -> okdesk,
#                      amocrm -> amocrm, messenger -> messenger (tls and unknown ones: no site)
#   NGINX_SITES        subdomains, comma separated; when set, used instead of COMPOSE_PROFILES
#   GATEWAY_TEMPLATES_DIR  default /etc/nginx/gateway-templates (nginx/conf.d of the checkout)
#   GATEWAY_CONF_DIR       default /etc/nginx/conf.d
#   GATEWAY_CERTS_DIR      default /etc/nginx/certs (certbot's layout: live/<name>/fullchain.pem)
#   GATEWAY_STATE_FILE     default /tmp/gateway-sites.certs (the certificates' last fingerprint)
#
# Only ${DOMAIN} is substituted in the templates, never nginx's own $variables.
set -eu

templates=${GATEWAY_TEMPLATES_DIR:-/etc/nginx/gateway-templates}
conf_dir=${GATEWAY_CONF_DIR:-/etc/nginx/conf.d}
certs=${GATEWAY_CERTS_DIR:-/etc/nginx/certs}
state=${GATEWAY_STATE_FILE:-/tmp/gateway-sites.certs}

say() { echo "gateway-sites: $*" >&2; }

# profile -> subdomain (the same pairs as GATEWAY_SERVICES in scripts/lib/common.sh)
site_of_profile() {
  case $1 in
    vk) echo vk ;;
    telegram) echo tg ;;
    okdesk) echo okdesk ;;
    amocrm) echo amocrm ;;
    messenger) echo messenger ;;
    *) ;;
  esac
}

names() {
  list=""
  if [ -n "${NGINX_SITES:-}" ]; then
    list=$(echo "$NGINX_SITES" | tr -s ', ' '\n')
  else
    for p in $(echo "${COMPOSE_PROFILES:-}" | tr ', ' '  '); do
      list="$list
$(site_of_profile "$p")"
    done
  fi
  echo "$list" | sed '/^$/d' | awk '!seen[$0]++'
}

render_one() {
  # render_one TEMPLATE OUT
  # shellcheck disable=SC2016 # envsubst's list of variables, literally
  envsubst '${DOMAIN}' <"$1" >"$2.tmp"
  mv "$2.tmp" "$2"
}

render() {
  : "${DOMAIN:?DOMAIN is not set}"
  [ -f "$templates/default.conf.template" ] || { say "$templates/default.conf.template missing"; exit 1; }
  mkdir -p "$conf_dir"
  for n in $(names); do
    [ -f "$templates/$n.conf.template" ] || { say "unknown site '$n' (no $templates/$n.conf.template)"; exit 1; }
  done
  rm -f "$conf_dir"/*.conf
  render_one "$templates/default.conf.template" "$conf_dir/default.conf"
  served=""
  for n in $(names); do
    name="$n.$DOMAIN"
    if [ -s "$certs/live/$name/fullchain.pem" ] && [ -s "$certs/live/$name/privkey.pem" ]; then
      render_one "$templates/$n.conf.template" "$conf_dir/$n.conf"
      served="$served $name"
    else
      say "no certificate for $name yet ($certs/live/$name/): not served until there is one (scripts/tls-selfsigned.sh, or the tls profile's certbot); http://$name/.well-known/acme-challenge/ works already"
    fi
  done
  say "serving:${served:- nothing but the ACME challenges}"
}

fingerprint() {
  if [ -d "$certs/live" ]; then
    # the symlinks' targets (certbot points them at fullchainN.pem anew at every renewal) and
    # the files behind them (size, time)
    { ls -lR "$certs/live"; ls -lLR "$certs/live"; } 2>/dev/null | cksum
  else
    echo none
  fi
}

check_once() {
  now=$(fingerprint)
  before=$(cat "$state" 2>/dev/null || echo unknown)
  if [ "$now" != "$before" ]; then
    echo "$now" >"$state"
    if [ "$before" != unknown ]; then
      say "certificates changed: re-rendering and reloading nginx"
      render
      nginx -s reload
    fi
  fi
}

case ${1:-} in
  names) names ;;
  render)
    render
    fingerprint >"$state"
    ;;
  check-once) check_once ;;
  watch)
    while :; do
      sleep "${TLS_RELOAD_CHECK_SECS:-300}"
      check_once || say "reload failed; nginx keeps the configuration it has"
    done
    ;;
  *)
    echo "Usage: gateway-sites names|render|check-once|watch" >&2
    exit 2
    ;;
esac
