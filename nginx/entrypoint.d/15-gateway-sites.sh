#!/bin/sh
# Run by the nginx image's /docker-entrypoint.sh before nginx starts (mounted as
# /docker-entrypoint.d/15-gateway-sites.sh): renders the server blocks of the enabled services
# (nginx/gateway-sites.sh), then leaves a watcher behind that reloads nginx when a certificate
# is added or renewed (certbot of the `tls` profile, or certbot on the host).
set -eu
/bin/sh /usr/local/bin/gateway-sites render
/bin/sh /usr/local/bin/gateway-sites watch </dev/null &
