#!/usr/bin/env bash
# Installs everything `npm start`, `npm test` and `npm run bench` need, idempotently:
#   - npm packages (npm ci when node_modules is missing or older than the lockfile)
#   - the Temporal CLI (dev server + Web UI), built from the Go module proxy
#   - Temporal's time-skipping test server, resolved from Maven Central
#   - redis-server and mariadbd, from Debian packages
# Tools are cached by version outside the repo, so a fresh clone on a warm machine is fast.
# Prints each step and its time; fails naming the missing toolchain or the registry's error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FLASH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flash-checkout}"
TEMPORAL_CLI_VERSION="1.5.1"
TEST_SERVER_VERSION="$(sed -n 's:.*<temporal.test-server.version>\(.*\)</temporal.test-server.version>.*:\1:p' "$ROOT/tools/test-server/pom.xml")"

mkdir -p "$CACHE"
now_ms() { date +%s%3N; }
T_ALL=$(now_ms)
step_start() { STEP_NAME="$1"; STEP_T=$(now_ms); echo "[install] $STEP_NAME ..."; }
step_done() { echo "[install] $STEP_NAME: $1 ($(( $(now_ms) - STEP_T )) ms)"; }
die() { echo "[install] ERROR: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$2"; }

# ---- npm packages -------------------------------------------------------------------------
step_start "npm packages"
need npm "npm is not installed; install Node.js >= 20 (Debian: apt-get install nodejs npm)"
if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed (see the registry error above)"
  step_done "installed"
else
  step_done "up to date"
fi

# ---- Temporal CLI -------------------------------------------------------------------------
TEMPORAL_DIR="$CACHE/temporal-cli-$TEMPORAL_CLI_VERSION"
step_start "Temporal CLI v$TEMPORAL_CLI_VERSION"
if [ -x "$TEMPORAL_DIR/temporal" ]; then
  step_done "cached at $TEMPORAL_DIR/temporal"
else
  need go "Go is not installed; it is needed once to build the Temporal CLI (Debian: apt-get install golang, or https://go.dev/dl)"
  echo "[install] building the Temporal CLI with 'go install' (first run only; several minutes on 2 cores)"
  mkdir -p "$TEMPORAL_DIR.tmp"
  # -x would be too loud; GOFLAGS=-v prints each package as it compiles, which is the progress CI needs.
  if ! GOBIN="$TEMPORAL_DIR.tmp" GOFLAGS="${GOFLAGS:-} -v" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" 2>&1 \
      | awk '{ n++; if (n % 50 == 0 || /error|cannot|refused/) printf "[install]   go: %d packages so far (%s)\n", n, $0; fflush() }'; then
    die "go install github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION failed"
  fi
  [ -x "$TEMPORAL_DIR.tmp/temporal" ] || die "go install finished but produced no temporal binary"
  rm -rf "$TEMPORAL_DIR" && mv "$TEMPORAL_DIR.tmp" "$TEMPORAL_DIR"
  step_done "built $TEMPORAL_DIR/temporal"
fi

# ---- Temporal time-skipping test server --------------------------------------------------
TEST_SERVER_DIR="$CACHE/temporal-test-server-$TEST_SERVER_VERSION"
step_start "Temporal test server $TEST_SERVER_VERSION"
if [ -x "$TEST_SERVER_DIR/bin/temporal-test-server" ] && [ -f "$TEST_SERVER_DIR/.complete" ]; then
  step_done "cached at $TEST_SERVER_DIR"
else
  need java "Java is not installed; the test server needs a JRE >= 11 (Debian: apt-get install default-jre-headless)"
  need mvn "Maven is not installed; it resolves the test server from Maven Central (Debian: apt-get install maven)"
  rm -rf "$TEST_SERVER_DIR" && mkdir -p "$TEST_SERVER_DIR/lib" "$TEST_SERVER_DIR/bin"
  if ! mvn -B -q -Dstyle.color=never -f "$ROOT/tools/test-server/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$TEST_SERVER_DIR/lib"; then
    die "mvn could not resolve io.temporal:temporal-test-server:$TEST_SERVER_VERSION (see the Maven error above)"
  fi
  cat > "$TEST_SERVER_DIR/bin/temporal-test-server" <<'LAUNCHER'
#!/usr/bin/env bash
# Runs Temporal's Java test server: temporal-test-server <port> [--enable-time-skipping]
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec java -XX:+UseSerialGC -Xss512k -cp "$DIR/lib/*" io.temporal.testserver.TestServer "$@"
LAUNCHER
  chmod +x "$TEST_SERVER_DIR/bin/temporal-test-server"
  touch "$TEST_SERVER_DIR/.complete"
  step_done "installed $(ls "$TEST_SERVER_DIR/lib" | wc -l) jars into $TEST_SERVER_DIR"
fi

# ---- Redis and MariaDB ----------------------------------------------------------------------
step_start "redis-server and mariadbd"
find_sbin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }
missing=()
[ -n "$(find_sbin redis-server)" ] || missing+=(redis-server)
{ [ -n "$(find_sbin mariadbd)" ] && [ -n "$(find_sbin mariadb-install-db)" ]; } || missing+=(mariadb-server mariadb-client)
if [ ${#missing[@]} -eq 0 ]; then
  step_done "present"
else
  need apt-get "apt-get not found; install ${missing[*]} with your package manager"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q || die "apt-get update failed (see the error above)"
  # The packages' own services are not wanted: the stack runs its own instances on its own ports.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed (see the error above)"
  step_done "installed ${missing[*]}"
fi

# The stack launcher reads the resolved paths from here instead of guessing again.
cat > "$CACHE/tools.env" <<EOF
TEMPORAL_CLI=$TEMPORAL_DIR/temporal
TEMPORAL_TEST_SERVER=$TEST_SERVER_DIR/bin/temporal-test-server
REDIS_SERVER=$(find_sbin redis-server)
MARIADBD=$(find_sbin mariadbd)
MARIADB_INSTALL_DB=$(find_sbin mariadb-install-db)
EOF
echo "[install] all tools ready in $(( $(now_ms) - T_ALL )) ms (cache: $CACHE)"
