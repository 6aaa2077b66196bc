#!/usr/bin/env bash
# Make sure Nginx is installed: Debian's package via apt when root, else say how.
# It never starts, stops or configures the system's own Nginx service.
set -euo pipefail

if command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]]; then
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    echo "Nginx is missing. Install it with:  sudo apt-get install -y nginx" >&2
    exit 1
fi

# Keep apt from starting the system's Nginx service on port 80: the stack runs its own.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
echo "Installing Nginx with apt..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx
