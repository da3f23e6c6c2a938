#!/usr/bin/env bash
# Installs s5cmd (the fastest S3 command line the registries offer: Go,
# parallel multipart) once, into build/tools/bin, for the bench's two-hop
# rows (`curl -o FILE && s5cmd cp FILE s3://...`). Cached: a second run does
# nothing. `go install s5cmd@VERSION` alone fails here (the module proxy
# refuses s5cmd's version list, which go install reads for deprecations),
# so it is built from a throwaway module that requires the exact version.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${S5CMD_VERSION:-v2.3.0}"
BIN_DIR="$ROOT/build/tools/bin"
STAMP="$BIN_DIR/.s5cmd-$VERSION"
if [ -x "$BIN_DIR/s5cmd" ] && [ -e "$STAMP" ]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "s5cmd: needs Go (go build)" >&2; exit 1; }
mkdir -p "$BIN_DIR"
echo "installing s5cmd $VERSION into $BIN_DIR (once)" >&2
WRAP="$(mktemp -d)"
trap 'rm -rf "$WRAP"' EXIT
cat >"$WRAP/go.mod" <<MOD
module s5cmdwrap

go 1.24

require github.com/peak/s5cmd/v2 $VERSION
MOD
printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/peak/s5cmd/v2"\n' >"$WRAP/tools.go"
(cd "$WRAP" && go mod tidy && CGO_ENABLED=0 GOBIN="$BIN_DIR" go install github.com/peak/s5cmd/v2)
rm -f "$BIN_DIR"/.s5cmd-*
touch "$STAMP"
