#!/usr/bin/env bash
# Install Debian's chromium for the HTML-gallery test (headless). Idempotent:
# does nothing when /usr/bin/chromium exists. Needs root (apt); without root
# it says so and exits 0, and the gallery test skips with that reason.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "setup_browser.sh: /usr/bin/chromium missing and not root; the" \
         "gallery browser test will be skipped." >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
