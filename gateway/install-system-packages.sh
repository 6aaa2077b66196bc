#!/usr/bin/env bash
# Make sure the system has what `make run` needs beyond Python itself: Nginx, Prometheus
# and its Nginx exporter (for `make run GATEWAY_ARGS=--monitoring`), and Python's venv
# module (Debian ships it apart, as python3-venv); with --for-tests, also
# what `make test` needs besides (envsubst, Chromium and ChromeDriver, PostgreSQL). Installed with
# apt when root, else the one command to run is printed. It never starts, stops or
# configures the system's own Nginx or Prometheus services.
set -euo pipefail

missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
# Debian's prometheus package has promtool too, which the tests run on monitoring/.
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-nginx-exporter >/dev/null || missing+=(prometheus-nginx-exporter)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [[ ${1:-} == --for-tests ]]; then
    # envsubst: the tests run the gateway image's render-gateway.sh as the image would.
    command -v envsubst >/dev/null || missing+=(gettext-base)
    # tests/integration/test_api_docs.py opens the API docs in Chromium.
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    # The logger's tests run each store's tests on PostgreSQL too (tests/postgres.py).
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
fi
if ((${#missing[@]} == 0)); then
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "Missing: ${missing[*]}. Install with:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

# Keep apt from starting the system's Nginx (port 80), Prometheus (port 9090) and PostgreSQL
# (port 5432) services: the stack and the tests run their own.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
echo "Installing ${missing[*]} with apt..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
