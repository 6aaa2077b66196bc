#!/bin/sh
# The gateway image's upstream list, kept in step with the replicas Docker's DNS knows.
#
# Nginx 1.22 resolves an upstream's host names once, at start or reload (the `resolve`
# flag that re-resolves them came only in 1.27.3), and a proxy_pass through a variable
# re-resolves per request but loses the upstream block: keep-alive, max_fails and the
# retries. So this script asks Docker's DNS for every address of the `logger` and
# `predictor` services, writes a plain upstream list, and every few seconds does it
# again, reloading Nginx gracefully when the list changed. After
# `docker-compose up --scale predictor=N`, traffic reaches exactly the live replicas
# within one interval plus a reload (plus the grace below when replicas go away).
#
# Every reload closes the gateway's idle client keep-alive connections (Nginx's old
# workers do so on their graceful exit), and a client that sends on one at that instant
# sees it closed without an answer. So the list changes only when it must: an address
# that leaves the DNS stays listed for GATEWAY_DNS_GRACE seconds. A replica restarted in
# place (`docker restart`, the rolling restart of docs/reliability.md) comes back on the
# same address within that time and the gateway is not reloaded at all. Meanwhile a
# request that meets the address loses a connect timeout and moves on to the next
# replica, and max_fails keeps the others away from it.
#
# Run from /docker-entrypoint.d/ before Nginx starts: it writes the first list, then
# leaves the watch loop running in the background. With --print it prints the list once.
set -eu

conf=/etc/nginx/conf.d/00-upstreams.conf
# The one upstream template, shared with `python -m gateway` (local runs).
template=${GATEWAY_NGINX_DIR:-/etc/nginx}/upstreams.conf.template
interval=${GATEWAY_DNS_INTERVAL:-2}
grace=${GATEWAY_DNS_GRACE:-6}
seen=${TMPDIR:-/tmp}/upstreams-from-dns
mkdir -p "$seen"

addresses() {  # name host: the addresses in the DNS, and those gone for under the grace
    now=$(date +%s)
    touch "$seen/$1"
    # "address last-seen" lines: the live ones (now) first, so that they win over the
    # remembered ones; the remembered ones are kept while within the grace.
    { getent ahostsv4 "$2" | awk -v now="$now" '{ print $1, now }'; cat "$seen/$1"; } |
        awk -v now="$now" -v grace="$grace" '
            !($1 in last) { last[$1] = $2 }
            END { for (a in last) if (now - last[a] <= grace) print a, last[a] }' |
        sort > "$seen/$1.new"
    mv "$seen/$1.new" "$seen/$1"
    cut -d ' ' -f 1 "$seen/$1"
}

servers() {  # name host port: the service's servers, comma-separated
    addresses=$(addresses "$1" "$2")
    if [ -z "$addresses" ]; then
        # No replica yet: an upstream needs a server, and a down one gives a JSON 503.
        echo "127.0.0.1:$3 down"
        return
    fi
    echo "$addresses" | sed "s/\$/:$3/" | paste -sd, -
}

render() {  # upstreams.conf.template, each server line repeated once per server
    echo "# Written by upstreams-from-dns.sh from Docker's DNS; rewritten when replicas change."
    awk -v LOGGER_SERVER="$(servers logger "${LOGGER_HOST:-logger}" "${LOGGER_PORT:-8000}")" \
        -v PREDICTOR_SERVER="$(servers predictors "${PREDICTOR_HOST:-predictor}" \
            "${PREDICTOR_PORT:-8001}")" '
        function expand(name, servers,   count, list, i, line) {
            count = split(servers, list, ",")
            for (i = 1; i <= count; i++) {
                line = $0
                sub("[$][{]" name "[}]", list[i], line)
                print line
            }
        }
        index($0, "${LOGGER_SERVER}") { expand("LOGGER_SERVER", LOGGER_SERVER); next }
        index($0, "${PREDICTOR_SERVER}") { expand("PREDICTOR_SERVER", PREDICTOR_SERVER); next }
        { print }' "$template"
}

watch() {
    while sleep "$interval"; do
        new=$(render)
        if [ "$new" != "$(cat "$conf")" ]; then
            printf '%s\n' "$new" > "$conf.new"
            mv "$conf.new" "$conf"
            if nginx -t -q; then
                nginx -s reload
                echo "upstreams-from-dns: Nginx reloaded with" \
                    "$(grep '^ *server ' "$conf" | tr -s ' ' | tr '\n' ' ')" >&2
            fi
        fi
    done
}

if [ "${1:-}" = --print ]; then  # print the list once, for tests and for debugging
    render
    exit
fi
render > "$conf"
watch &
