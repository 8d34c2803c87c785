#!/bin/sh
# Renders a gretabisect HTML report with headless Chromium and writes a PNG screenshot.
#
#   scripts/heatmap-screenshot.sh REPORT.html OUT.png [WIDTH,HEIGHT]
#
# The page needs no network; Chromium is started with everything that would reach one
# switched off, and a throw-away profile. CHROMIUM overrides the browser binary.
set -eu

if [ $# -lt 2 ]; then
	echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
	exit 2
fi
report=$1
out=$2
size=${3:-1200,900}

if [ ! -f "$report" ]; then
	echo "$0: $report: no such file" >&2
	exit 2
fi

browser=${CHROMIUM:-}
if [ -z "$browser" ]; then
	for b in chromium chromium-browser google-chrome; do
		if command -v "$b" >/dev/null 2>&1; then
			browser=$b
			break
		fi
	done
fi
if [ -z "$browser" ]; then
	echo "$0: no chromium found (apt-get install -y chromium)" >&2
	exit 2
fi

abs() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
report=$(abs "$report")
out=$(abs "$out")

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--hide-scrollbars --disable-dev-shm-usage --user-data-dir="$profile" \
	--screenshot="$out" --window-size="$size" "file://$report" >"$profile/log" 2>&1 || {
	cat "$profile/log" >&2
	exit 1
}
if [ ! -s "$out" ]; then
	cat "$profile/log" >&2
	echo "$0: chromium wrote no screenshot to $out" >&2
	exit 1
fi
