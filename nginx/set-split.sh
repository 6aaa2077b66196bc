#!/bin/sh
# Change the canary's or the shadow's share of a running gateway container, with a
# graceful reload (docs/models.md):
#
#     docker-compose exec gateway set-split canary 10
#     docker-compose exec gateway set-split shadow 20
#
# The configuration is rendered again as at start (render-gateway.sh), with the new share
# and the other one as this script last set it, checked by Nginx, then loaded. A
# restarted container takes both shares from its environment again
# (GATEWAY_CANARY_PERCENT and GATEWAY_SHADOW_PERCENT in compose).
set -eu

state=/etc/nginx/split.env
if [ $# -ne 2 ] || ! { [ "$1" = canary ] || [ "$1" = shadow ]; }; then
    echo "usage: set-split canary|shadow PERCENT (0 to 100)" >&2
    exit 2
fi
if [ -f "$state" ]; then
    . "$state"
fi
if [ "$1" = canary ]; then
    GATEWAY_CANARY_PERCENT=$2
else
    GATEWAY_SHADOW_PERCENT=$2
fi
export GATEWAY_CANARY_PERCENT="${GATEWAY_CANARY_PERCENT:-0}"
export GATEWAY_SHADOW_PERCENT="${GATEWAY_SHADOW_PERCENT:-0}"
sh /docker-entrypoint.d/30-render-gateway.sh /etc/nginx
nginx -t -q
nginx -s reload
printf 'GATEWAY_CANARY_PERCENT=%s\nGATEWAY_SHADOW_PERCENT=%s\n' \
    "$GATEWAY_CANARY_PERCENT" "$GATEWAY_SHADOW_PERCENT" > "$state"
echo "the gateway sends $GATEWAY_CANARY_PERCENT % of the clients to the candidate and" \
     "mirrors $GATEWAY_SHADOW_PERCENT % of production's predictions to it"
