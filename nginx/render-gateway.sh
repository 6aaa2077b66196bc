#!/bin/sh
# The gateway image's routing file: gateway.conf.template filled in with the settings
# of the environment, and where the environment sets none, with the defaults of
# gateway.env (the ones `python -m gateway` uses too). Only the template's own ${...}
# are replaced: Nginx's $variables stay as they are.
#
# Run from /docker-entrypoint.d/ before Nginx starts. With --print it prints the file.
set -eu

dir=${GATEWAY_NGINX_DIR:-/etc/nginx}

while IFS='=' read -r name default; do
    case "$name" in '' | \#*) continue ;; esac
    export "$name=$(printenv "$name" || printf '%s' "$default")"
done < "$dir/gateway.env"

variables=$(grep -o '[$][{]GATEWAY_[A-Z_]*[}]' "$dir/gateway.conf.template" | sort -u | tr '\n' ' ')
if [ "${1:-}" = --print ]; then
    envsubst "$variables" < "$dir/gateway.conf.template"
else
    envsubst "$variables" < "$dir/gateway.conf.template" > /etc/nginx/conf.d/gateway.conf
fi
