#!/bin/sh
# Entrypoint of the nats container (docker-compose.yml): every service user of auth.conf needs
# a password in the environment, but only the enabled integrations have one in .env. The user
# of an empty or placeholder password (change_me, your_…, changeme) gets a random one here, new
# at every start and never printed, so nobody can log in as it; its service is off (and would
# refuse that placeholder itself). Then nats-server runs with the container's command.
#   NATS_SERVER_BIN  the server to exec (default nats-server; scripts/check-deploy.sh swaps it)
set -eu

random_password() {
  # a letter first: nats-server reads the value as a config token (deploy/nats/auth.conf)
  printf 'n%s' "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
}

for var in VK_NATS_PASSWORD TELEGRAM_NATS_PASSWORD OKDESK_NATS_PASSWORD AMOCRM_NATS_PASSWORD MESSENGER_NATS_PASSWORD; do
  value=$(eval "printf '%s' \"\${$var:-}\"")
  lower=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
  case $lower in
    "" | change_me* | changeme | your_* | your-* | "<"*">")
      user=$(echo "$var" | sed 's/_NATS_PASSWORD$//' | tr '[:upper:]' '[:lower:]')
      echo "nats entrypoint: $var is not set (or is a placeholder): user '$user' is locked with a random password" >&2
      export "$var=$(random_password)"
      ;;
  esac
done

exec "${NATS_SERVER_BIN:-nats-server}" "$@"
