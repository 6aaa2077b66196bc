#!/bin/sh
# The gateway image's Nginx configuration: nginx.conf.template (the main file) and
# gateway.conf.template (the routing), filled in with the settings of the environment,
# and where the environment sets none, with the defaults of gateway.env (the ones
# `python -m gateway` uses too). Only the templates' own ${...} are replaced: Nginx's
# $variables stay as they are.
#
# Run from /docker-entrypoint.d/ before Nginx starts: it writes /etc/nginx/nginx.conf
# and /etc/nginx/conf.d/gateway.conf, or the same two files under the folder given as
# its argument (for tests).
set -eu

dir=${GATEWAY_NGINX_DIR:-/etc/nginx}
out=${1:-/etc/nginx}

while IFS='=' read -r name default; do
    case "$name" in '' | \#*) continue ;; esac
    export "$name=$(printenv "$name" || printf '%s' "$default")"
done < "$dir/gateway.env"

# API keys: checked when GATEWAY_API_KEYS names the store (docker-compose.keys.yml mounts
# it as a secret), the same rule as `python -m gateway up --api-keys`, and with the keys'
# check on the same socket.
if [ -n "${GATEWAY_API_KEYS:-}" ]; then
    # Every request would be a 500: say why, and do not start.
    if [ $# -eq 0 ] && ! su -s /bin/sh nobody -c "test -r '$GATEWAY_API_KEYS'"; then
        echo "render-gateway: the API keys' store $GATEWAY_API_KEYS is missing or not" \
             "readable by Nginx's workers (nobody): make keys with" \
             "\`python -m gateway keys add NAME\` on the host" >&2
        exit 1
    fi
    export GATEWAY_AUTH=/_gateway_auth GATEWAY_ADMIN_AUTH=/_gateway_admin_auth
else
    export GATEWAY_API_KEYS=/dev/null GATEWAY_AUTH=off GATEWAY_ADMIN_AUTH=off
fi
export GATEWAY_AUTH_SOCKET="${TMPDIR:-/tmp}/gateway-$GATEWAY_PORT-auth.sock"
if [ $# -eq 0 ]; then
    rm -f "$GATEWAY_AUTH_SOCKET"  # left by a killed Nginx, which would not listen there again
fi

# The gateway's metrics process writes Nginx's error lines as JSON, where it runs.
if [ "$GATEWAY_ACCESS_METRICS" = on ]; then
    export GATEWAY_ERROR_LOG="syslog:server=unix:$GATEWAY_METRICS_SOCKET,nohostname,tag=nginx"
else
    export GATEWAY_ERROR_LOG=stderr
fi

# The split_clients lines of the canary and the shadow: none for 0 %, which split_clients
# refuses (the same rule as gateway/render.py).
split_line() {  # setting value: the line that gives value to that percent of the keys
    percent=$(printenv "$1")
    if ! printf '%s' "$percent" | grep -Eq '^(100(\.0{1,2})?|[0-9]{1,2}(\.[0-9]{1,2})?)$'; then
        echo "render-gateway: $1 must be a percentage from 0 to 100 with at most two" \
             "decimals, not '$percent'" >&2
        exit 1
    fi
    if ! printf '%s' "$percent" | grep -Eq '^0+(\.0+)?$'; then
        printf '%s%% %s;' "$percent" "$2"
    fi
}
GATEWAY_CANARY_SPLIT=$(split_line GATEWAY_CANARY_PERCENT candidate)
GATEWAY_SHADOW_SPLIT=$(split_line GATEWAY_SHADOW_PERCENT on)
export GATEWAY_CANARY_SPLIT GATEWAY_SHADOW_SPLIT

variables=$(grep -o '[$][{]GATEWAY_[A-Z_]*[}]' "$dir/gateway.conf.template" | sort -u | tr '\n' ' ')
mkdir -p "$out/conf.d"
envsubst "$variables" < "$dir/gateway.conf.template" > "$out/conf.d/gateway.conf"
NGINX_DIR=/etc/nginx envsubst '${NGINX_DIR}' < "$dir/nginx.conf.template" > "$out/nginx.conf"
