#!/usr/bin/env bash
# Print the path of a Chromium for the report.html browser test (tests/test_report_html.py).
# Installs Debian's package with apt-get when none is found, as .ci/start_postgres.sh does for
# PostgreSQL; exits 1 (printing nothing) when there is none and it cannot install one.
#   export ABLATE_TEST_CHROMIUM=$(bash .ci/find_chromium.sh)
set -euo pipefail

find_one() {
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if find_one; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2 || true
  find_one && exit 0
fi
exit 1
