#!/usr/bin/env bash
# Installs versitygw (a real S3-compatible server that checks SigV4
# signatures) once, into build/tools/bin, for the object-store tests
# (tests/it/objstore.rs). Cached: a second run does nothing.
set -euo pipefail
TOOL=versitygw
VERSION="${VERSITYGW_VERSION:-v1.8.0}"
. "$(dirname "${BASH_SOURCE[0]}")/go-tool.sh"
CGO_ENABLED=0 GOBIN="$BIN_DIR" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
go_tool_installed
