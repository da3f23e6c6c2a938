#!/usr/bin/env bash
# `curl -o FILE && sync FILE`: a download on stable storage when it ends, as
# wxmedia's to_path is (it fsyncs the file before renaming it into place).
#
#   curl_sync.sh [-a CAFILE] URL OUT
#
# Prints "BENCH ok=1 host=curl mode=sync bytes=N secs=S n=1", where S is
# curl's own %{time_total} (process start-up excluded, as in the `curl -o
# FILE` row) plus the time of `sync FILE` (fsync of that one file).
set -euo pipefail
ca=()
if [ "${1-}" = -a ]; then ca=(--cacert "$2"); shift 2; fi
url=$1 out=$2
total=$(curl -sS --fail "${ca[@]}" -o "$out" -w '%{time_total}' "$url")
t0=$EPOCHREALTIME
sync "$out"
t1=$EPOCHREALTIME
bytes=$(stat -c %s "$out")
secs=$(awk -v c="$total" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", c + b - a }')
echo "BENCH ok=1 host=curl mode=sync bytes=$bytes secs=$secs n=1"
