#!/usr/bin/env bash
# Browser-test dependencies from Debian's packages: chromium, its driver, and a CJK font so that
# Chinese pages render (and screenshots read). Installs only what is missing (as scripts/pg.sh
# does for PostgreSQL); browser downloads by Selenium Manager are never used.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fonts=$(fc-list : family 2>/dev/null || true)  # read whole: grep -q would cut the pipe
grep -qiE 'wenquanyi|noto sans cjk' <<<"$fonts" || missing+=(fonts-wqy-zenhei)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing ${missing[*]} from Debian's packages" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
