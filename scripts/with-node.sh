#!/usr/bin/env bash
# Runs a command with the project's Node.js first on PATH: the one scripts/install-tools.sh
# cached when the machine's node is older than 24, else the machine's own. Every npm script that
# runs the app, its tests or its tools goes through here, so child processes (tsx, vitest, the
# API and worker they spawn) all run on the same node.
#
# Usage: bash scripts/with-node.sh <command> [args...]
set -euo pipefail
CACHE="${FLASH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flash-checkout}"
node_dir="$(sed -n 's/^NODE_DIR=//p' "$CACHE/tools.env" 2>/dev/null || true)"
if [ -n "$node_dir" ]; then
  [ -x "$node_dir/node" ] || { echo "[with-node] $node_dir/node is missing: run bash scripts/install-tools.sh" >&2; exit 1; }
  export PATH="$node_dir:$PATH"
fi
exec "$@"
