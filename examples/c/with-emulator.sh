#!/usr/bin/env bash
# Run a command against a fresh wxmedia emulator on loopback.
#
#   with-emulator.sh EMULATOR [EMULATOR-ARGS...] -- COMMAND [ARGS...]
#
# Starts `EMULATOR --listen 127.0.0.1:0 --access-token $WXMEDIA_ACCESS_TOKEN
# EMULATOR-ARGS...`, reads the bound address from its first stdout line,
# exports WXMEDIA_BASE_URL=http://ADDR and WXMEDIA_ACCESS_TOKEN, runs COMMAND,
# stops the emulator and exits with COMMAND's status.
# WXMEDIA_ACCESS_TOKEN defaults to a fixed demo token.
set -u

if [ $# -lt 3 ]; then
    echo "usage: $0 EMULATOR [EMULATOR-ARGS...] -- COMMAND [ARGS...]" >&2
    exit 2
fi
emulator=$1
shift
emu_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    emu_args+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
    echo "$0: no command after --" >&2
    exit 2
fi
if [ ! -x "$emulator" ]; then
    echo "$0: emulator $emulator not found (run: make lib)" >&2
    exit 2
fi

export WXMEDIA_ACCESS_TOKEN="${WXMEDIA_ACCESS_TOKEN:-wxmedia-demo-token}"
logdir=$(mktemp -d "${TMPDIR:-/tmp}/wxm-emulator-XXXXXX")
"$emulator" --listen 127.0.0.1:0 --access-token "$WXMEDIA_ACCESS_TOKEN" \
    ${emu_args[@]+"${emu_args[@]}"} >"$logdir/stdout" 2>"$logdir/stderr" </dev/null &
emu_pid=$!

stop() {
    if kill -0 "$emu_pid" 2>/dev/null; then
        kill -TERM "$emu_pid" 2>/dev/null
        wait "$emu_pid" 2>/dev/null
    fi
    rm -rf "$logdir"
}
trap stop EXIT

addr=
for _ in $(seq 1 200); do
    if [ -s "$logdir/stdout" ] && addr=$(head -n 1 "$logdir/stdout") &&
        [[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]]; then
        break
    fi
    addr=
    if ! kill -0 "$emu_pid" 2>/dev/null; then
        echo "$0: the emulator exited:" >&2
        cat "$logdir/stderr" >&2
        exit 1
    fi
    sleep 0.05
done
if [ -z "$addr" ]; then
    echo "$0: the emulator printed no address within 10 s" >&2
    exit 1
fi
export WXMEDIA_BASE_URL="http://$addr"

"$@"
status=$?
exit $status
