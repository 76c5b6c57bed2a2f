#!/usr/bin/env bash
# Installs what the "cluster layout" of the local stack (stack/cluster.ts) needs on top of
# scripts/install-tools.sh, idempotently:
#   - the Temporal server (frontend/history/matching/worker as separate processes), built with go install
#   - temporal-sql-tool (schema setup), built with go install
#   - the Temporal Web UI server, built with go install
#   - the Temporal PostgreSQL schema files, copied out of the Go module cache
#   - PostgreSQL 15, nginx and redis-cli, from Debian packages
# Each Go binary gets its own GOBIN under the cache, keyed by version: the server and the UI server are
# both called `server`. Prints each step and its time; writes the resolved paths to cluster-tools.env.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INSTALL_TAG=install-cluster
# shellcheck source=scripts/install-common.sh
source "$ROOT/scripts/install-common.sh"
# The server inside Temporal CLI v1.5.1. The dev server (`npm start`) moved to CLI 1.9.1 (server 1.32.0) for
# its SQLite fix; the cluster runs on PostgreSQL, which that bug never touched, and 1.32.0 is not built here yet.
TEMPORAL_SERVER_VERSION="1.29.1"
# Newer ui-server tags need a newer Go than the one the CLI was built with.
TEMPORAL_UI_VERSION="2.42.1"
PG_MAJOR="15"

# go install <module path>@<version> into <dir>, expecting <binary> there. Builds into <dir>.tmp and
# renames it at the end, so an interrupted build never leaves a half-installed tool that looks cached.
go_install() {
  local pkg="$1" dir="$2" binary="$3"
  need go "Go is not installed; it is needed once to build $pkg (Debian: apt-get install golang, or https://go.dev/dl)"
  echo "[install-cluster] go install $pkg ($(go version | awk '{print $3}'); first run only, minutes on 2 cores)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  # GOTOOLCHAIN=local: never download another Go toolchain (only the module proxy is reachable).
  # GOFLAGS=-v prints each package as it compiles: one progress line every 50 packages.
  if ! GOBIN="$dir.tmp" GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -v" go install "$pkg" 2>&1 \
      | awk '{ n++; if (n % 50 == 0 || /error|cannot|refused|requires go/) printf "[install-cluster]   go: %d packages so far (%s)\n", n, $0; fflush() }'; then
    die "go install $pkg failed (see the go error above)"
  fi
  [ -x "$dir.tmp/$binary" ] || die "go install $pkg finished but produced no $binary binary (the go error is above)"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

# ---- Temporal server ------------------------------------------------------------------------
SERVER_DIR="$CACHE/temporal-server-$TEMPORAL_SERVER_VERSION"
step_start "Temporal server v$TEMPORAL_SERVER_VERSION"
if [ -x "$SERVER_DIR/server" ]; then
  step_done "cached at $SERVER_DIR/server"
else
  go_install "go.temporal.io/server/cmd/server@v$TEMPORAL_SERVER_VERSION" "$SERVER_DIR" server
  step_done "built $SERVER_DIR/server"
fi

# ---- temporal-sql-tool ----------------------------------------------------------------------
SQL_TOOL_DIR="$CACHE/temporal-sql-tool-$TEMPORAL_SERVER_VERSION"
step_start "temporal-sql-tool v$TEMPORAL_SERVER_VERSION"
if [ -x "$SQL_TOOL_DIR/sql" ]; then
  step_done "cached at $SQL_TOOL_DIR/sql"
else
  go_install "go.temporal.io/server/cmd/tools/sql@v$TEMPORAL_SERVER_VERSION" "$SQL_TOOL_DIR" sql
  step_done "built $SQL_TOOL_DIR/sql"
fi

# ---- PostgreSQL schema files ----------------------------------------------------------------
# Copied next to the binaries so that `go clean -modcache` cannot take them away.
SCHEMA_DIR="$CACHE/temporal-schema-$TEMPORAL_SERVER_VERSION/postgresql/v12"
step_start "Temporal PostgreSQL schema v$TEMPORAL_SERVER_VERSION"
if [ -d "$SCHEMA_DIR/temporal/versioned" ] && [ -d "$SCHEMA_DIR/visibility/versioned" ]; then
  step_done "cached at $SCHEMA_DIR"
else
  need go "Go is not installed; it is needed to locate the schema files in the module cache"
  MOD_DIR="$(go env GOMODCACHE)/go.temporal.io/server@v$TEMPORAL_SERVER_VERSION"
  if [ ! -d "$MOD_DIR/schema/postgresql/v12" ]; then
    # The module is in the cache after the server build above, unless the cache was cleaned since.
    GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download "go.temporal.io/server@v$TEMPORAL_SERVER_VERSION" \
      || die "go mod download go.temporal.io/server@v$TEMPORAL_SERVER_VERSION failed"
  fi
  [ -d "$MOD_DIR/schema/postgresql/v12/temporal/versioned" ] || die "no schema/postgresql/v12 in $MOD_DIR"
  rm -rf "$SCHEMA_DIR.tmp" && mkdir -p "$SCHEMA_DIR.tmp"
  cp -R "$MOD_DIR/schema/postgresql/v12/." "$SCHEMA_DIR.tmp/"
  chmod -R u+w "$SCHEMA_DIR.tmp" # the module cache is read-only
  rm -rf "$SCHEMA_DIR" && mv "$SCHEMA_DIR.tmp" "$SCHEMA_DIR"
  step_done "copied to $SCHEMA_DIR"
fi

# ---- Temporal Web UI server ----------------------------------------------------------------
UI_DIR="$CACHE/temporal-ui-server-$TEMPORAL_UI_VERSION"
step_start "Temporal UI server v$TEMPORAL_UI_VERSION"
if [ -x "$UI_DIR/server" ]; then
  step_done "cached at $UI_DIR/server"
else
  go_install "github.com/temporalio/ui-server/v2/cmd/server@v$TEMPORAL_UI_VERSION" "$UI_DIR" server
  step_done "built $UI_DIR/server"
fi

# ---- PostgreSQL, nginx, redis-cli -----------------------------------------------------------
step_start "PostgreSQL $PG_MAJOR, nginx, redis-cli"
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
missing=()
{ [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/postgres" ]; } || missing+=("postgresql-$PG_MAJOR")
[ -x "$PG_BIN/psql" ] || [ -n "$(find_sbin psql)" ] || missing+=("postgresql-client-$PG_MAJOR")
[ -n "$(find_sbin nginx)" ] || missing+=(nginx)
[ -n "$(find_sbin redis-cli)" ] || missing+=(redis-tools)
if [ ${#missing[@]} -eq 0 ]; then
  step_done "present"
else
  apt_install "${missing[@]}"
  step_done "installed ${missing[*]}"
fi
[ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb missing after install"
PSQL="$PG_BIN/psql"; [ -x "$PSQL" ] || PSQL="$(find_sbin psql)"

# PostgreSQL refuses to run as root. The launcher then runs it as this unprivileged user: the one the
# Debian package creates, else nobody.
PG_RUN_AS=""
if [ "$(id -u)" -eq 0 ]; then
  if id postgres >/dev/null 2>&1; then PG_RUN_AS=postgres; else PG_RUN_AS=nobody; fi
fi

cat > "$CACHE/cluster-tools.env" <<EOF
TEMPORAL_SERVER=$SERVER_DIR/server
TEMPORAL_SQL_TOOL=$SQL_TOOL_DIR/sql
TEMPORAL_SCHEMA_DIR=$SCHEMA_DIR
TEMPORAL_UI_SERVER=$UI_DIR/server
PG_INITDB=$PG_BIN/initdb
PG_POSTGRES=$PG_BIN/postgres
PG_PSQL=$PSQL
PG_RUN_AS=$PG_RUN_AS
NGINX=$(find_sbin nginx)
REDIS_CLI=$(find_sbin redis-cli)
EOF
echo "[install-cluster] all cluster tools ready in $(( $(now_ms) - T_ALL )) ms (paths in $CACHE/cluster-tools.env)"
