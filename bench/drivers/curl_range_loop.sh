#!/usr/bin/env bash
# What a user following the WeCom document writes: Range requests of 20 MiB,
# one curl process each, appended to the output file.
#
#   curl_range_loop.sh [-a CAFILE] URL OUT [CHUNK]
#
# Prints "BENCH ok=1 host=curl mode=rangeloop bytes=N secs=S n=REQUESTS".
set -euo pipefail
ca=()
if [ "${1-}" = -a ]; then ca=(--cacert "$2"); shift 2; fi
url=$1 out=$2 chunk=${3:-20971520}
hdr=$(mktemp)
trap 'rm -f "$hdr"' EXIT
t0=$EPOCHREALTIME
: > "$out"
start=0 total= n=0
while [ -z "$total" ] || [ "$start" -lt "$total" ]; do
    end=$((start + chunk - 1))
    curl -sS "${ca[@]}" -r "$start-$end" -D "$hdr" "$url" >> "$out"
    code=$(sed -n 's/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' "$hdr" | tail -n 1)
    if [ "$code" != 206 ]; then
        echo "BENCH ok=0 host=curl mode=rangeloop rc=$code msg=HTTP $code"
        exit 1
    fi
    range=$(tr -d '\r' < "$hdr" | sed -n 's/^[Cc]ontent-[Rr]ange: bytes \([0-9]*\)-\([0-9]*\)\/\([0-9]*\)$/\1 \2 \3/p' | tail -n 1)
    read -r rs re total <<< "$range"
    [ "$rs" = "$start" ] || { echo "BENCH ok=0 host=curl mode=rangeloop rc=0 msg=bad Content-Range"; exit 1; }
    start=$((re + 1))
    n=$((n + 1))
done
t1=$EPOCHREALTIME
bytes=$(stat -c %s "$out")
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
echo "BENCH ok=1 host=curl mode=rangeloop bytes=$bytes secs=$secs n=$n"
