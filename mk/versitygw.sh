#!/usr/bin/env bash
# Installs versitygw (a real S3-compatible server that checks SigV4
# signatures) once, into build/tools/bin, for the object-store tests
# (tests/it/objstore.rs). Cached: a second run does nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${VERSITYGW_VERSION:-v1.8.0}"
BIN_DIR="$ROOT/build/tools/bin"
STAMP="$BIN_DIR/.versitygw-$VERSION"
if [ -x "$BIN_DIR/versitygw" ] && [ -e "$STAMP" ]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "versitygw: needs Go (go install)" >&2; exit 1; }
mkdir -p "$BIN_DIR"
echo "installing versitygw $VERSION into $BIN_DIR (about a minute, once)" >&2
CGO_ENABLED=0 GOBIN="$BIN_DIR" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
rm -f "$BIN_DIR"/.versitygw-*
touch "$STAMP"
