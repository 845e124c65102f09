#!/bin/sh
# certbot of the `tls` compose profile (docker-compose.yml): obtains a Let's Encrypt certificate
# for every enabled subdomain (http-01 through nginx's webroot, /.well-known/acme-challenge/ on
# port 80), then renews what is due twice a day. nginx notices a new or renewed certificate by
# itself (nginx/gateway-sites.sh watch) and reloads; nothing here needs the Docker socket.
#
# One certificate per subdomain, named like it (live/vk.<DOMAIN>/, …), the layout nginx reads.
# A self-signed placeholder of scripts/tls-selfsigned.sh in live/<name>/ (marked by a
# .selfsigned file) is moved aside first and put back when Let's Encrypt refuses, so that nginx
# keeps serving the name. Refusals are retried at the next round (12 h), or at once with
# `docker compose restart certbot`.
#
# Environment: DOMAIN, COMPOSE_PROFILES or NGINX_SITES (the names, as nginx reads them),
# LETSENCRYPT_EMAIL (empty: registered without an e-mail), LETSENCRYPT_STAGING=true (the
# staging CA, for trials), CERTBOT_INTERVAL_SECS (default 43200).
set -eu

: "${DOMAIN:?DOMAIN is not set}"
webroot=/var/www/certbot
le=/etc/letsencrypt
interval=${CERTBOT_INTERVAL_SECS:-43200}

say() { echo "certbot.sh: $*" >&2; }

account="--register-unsafely-without-email"
[ -z "${LETSENCRYPT_EMAIL:-}" ] || account="--email $LETSENCRYPT_EMAIL"
staging=""
case ${LETSENCRYPT_STAGING:-false} in true | 1 | yes) staging="--staging" ;; esac

obtain() {
  name=$1
  live="$le/live/$name"
  if [ -f "$le/renewal/$name.conf" ]; then
    return 0
  fi
  aside=""
  if [ -f "$live/.selfsigned" ]; then
    aside="$le/selfsigned-aside/$name"
    rm -rf "$aside"
    mkdir -p "$le/selfsigned-aside"
    mv "$live" "$aside"
  elif [ -e "$live" ]; then
    say "$live exists but is neither certbot's nor a scripts/tls-selfsigned.sh placeholder: left alone"
    return 0
  fi
  say "requesting a certificate for $name"
  # shellcheck disable=SC2086 # $account and $staging are option lists
  if certbot certonly --non-interactive --agree-tos $account $staging \
    --webroot -w "$webroot" --cert-name "$name" -d "$name" --key-type ecdsa; then
    say "$name: certificate obtained; nginx loads it within TLS_RELOAD_CHECK_SECS"
    rm -rf "$aside"
  else
    say "$name: Let's Encrypt refused (DNS of $name pointing here? port 80 open?); retried in ${interval}s"
    if [ -n "$aside" ]; then
      rm -rf "$live"
      mv "$aside" "$live"
    fi
  fi
}

while :; do
  touch /tmp/certbot-loop-alive
  for sub in $(/bin/sh /usr/local/bin/gateway-sites names); do
    obtain "$sub.$DOMAIN"
  done
  certbot renew --non-interactive --webroot -w "$webroot" || say "renewal failed; retried in ${interval}s"
  sleep "$interval"
done
