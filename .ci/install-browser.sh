#!/usr/bin/env bash
# Install Debian's chromium for the browser test (tests/test_browser.py), only if no chromium is found.
# Idempotent and quick when a browser is present. Playwright's own browser download needs the internet,
# so the test drives the distribution's chromium instead. Set TAU_CHROMIUM to use another binary.
set -euo pipefail
for b in "${TAU_CHROMIUM:-}" chromium chromium-browser; do
    [ -n "$b" ] || continue
    if p=$(command -v "$b" 2>/dev/null); then
        echo "install-browser: found $p; nothing to do"
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no chromium and no apt-get; tests/test_browser.py will be skipped" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-browser: no chromium found; installing Debian's chromium with apt-get"
# fonts-liberation: readable text in the screenshots (chromium only recommends it)
if $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation; then
    echo "install-browser: installed $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
else
    # do not stop the build: the browser test skips and says why
    echo "install-browser: WARNING: apt-get could not install chromium; tests/test_browser.py will be skipped" >&2
fi
