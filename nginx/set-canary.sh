#!/bin/sh
# Change the canary's share of a running gateway container, with a graceful reload:
#
#     docker-compose exec gateway set-canary 10
#
# The configuration is rendered again as at start (render-gateway.sh) with the new
# GATEWAY_CANARY_PERCENT, checked by Nginx, then loaded. A restarted container takes the
# share of its environment again (GATEWAY_CANARY_PERCENT in compose; docs/models.md).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: set-canary PERCENT (0 to 100)" >&2
    exit 2
fi
GATEWAY_CANARY_PERCENT=$1 sh /docker-entrypoint.d/30-render-gateway.sh /etc/nginx
nginx -t -q
nginx -s reload
echo "the gateway sends $1 % of the clients to the candidate"
