#!/usr/bin/env bash
# Installs s5cmd (the fastest S3 command line the registries offer: Go,
# parallel multipart) once, into build/tools/bin, for the bench's two-hop
# rows (`curl -o FILE && s5cmd cp FILE s3://...`). Cached: a second run does
# nothing. `go install s5cmd@VERSION` alone fails here (the module proxy
# refuses s5cmd's version list, which go install reads for deprecations),
# so it is built from a throwaway module that requires the exact version.
set -euo pipefail
TOOL=s5cmd
VERSION="${S5CMD_VERSION:-v2.3.0}"
. "$(dirname "${BASH_SOURCE[0]}")/go-tool.sh"
WRAP="$(mktemp -d)"
trap 'rm -rf "$WRAP"' EXIT
cat >"$WRAP/go.mod" <<MOD
module s5cmdwrap

go 1.24

require github.com/peak/s5cmd/v2 $VERSION
MOD
printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/peak/s5cmd/v2"\n' >"$WRAP/tools.go"
(cd "$WRAP" && go mod tidy && CGO_ENABLED=0 GOBIN="$BIN_DIR" go install github.com/peak/s5cmd/v2)
go_tool_installed
