# Sourced (not run) by the scripts that install one Go tool into
# build/tools/bin once (mk/versitygw.sh, mk/s5cmd.sh), with TOOL and VERSION
# set: the cache check they share. Ends the calling script when TOOL at
# VERSION is already there; otherwise sets BIN_DIR and says it installs.
# The caller installs, then calls go_tool_installed.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$ROOT/build/tools/bin"
STAMP="$BIN_DIR/.$TOOL-$VERSION"
if [ -x "$BIN_DIR/$TOOL" ] && [ -e "$STAMP" ]; then
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "$TOOL: needs Go" >&2; exit 1; }
mkdir -p "$BIN_DIR"
echo "installing $TOOL $VERSION into $BIN_DIR (once)" >&2

go_tool_installed() {
  rm -f "$BIN_DIR/.$TOOL"-*
  touch "$STAMP"
}
