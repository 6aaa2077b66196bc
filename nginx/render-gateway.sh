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

variables=$(grep -o '[$][{]GATEWAY_[A-Z_]*[}]' "$dir/gateway.conf.template" | sort -u | tr '\n' ' ')
mkdir -p "$out/conf.d"
envsubst "$variables" < "$dir/gateway.conf.template" > "$out/conf.d/gateway.conf"
NGINX_DIR=/etc/nginx envsubst '${NGINX_DIR}' < "$dir/nginx.conf.template" > "$out/nginx.conf"
