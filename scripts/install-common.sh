# Sourced by scripts/install-tools.sh and scripts/install-cluster-tools.sh: the tools cache, the
# step log (each step's name and time) and the Debian package install both use, so that the two
# scripts report, fail and install alike. INSTALL_TAG, set before sourcing, prefixes every line.
# shellcheck shell=bash

CACHE="${FLASH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flash-checkout}"
mkdir -p "$CACHE"
now_ms() { date +%s%3N; }
T_ALL=$(now_ms)
step_start() { STEP_NAME="$1"; STEP_T=$(now_ms); echo "[$INSTALL_TAG] $STEP_NAME ..."; }
step_done() { echo "[$INSTALL_TAG] $STEP_NAME: $1 ($(( $(now_ms) - STEP_T )) ms)"; }
die() { echo "[$INSTALL_TAG] ERROR: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$2"; }
# Debian puts the servers in /usr/sbin, which a non-root PATH often lacks. Prints nothing when absent.
find_sbin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }

# apt_install <package>...: from Debian packages, `apt-get update` at most once a run. The packages'
# own services are not wanted (the stack runs its own instances on its own ports): RUNLEVEL=1 keeps
# invoke-rc.d from starting them where there is no init system.
apt_install() {
  need apt-get "apt-get not found; install $* with your package manager"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ "${APT_UPDATED:-0}" != 1 ]; then
    $sudo apt-get update -q || die "apt-get update failed (see the error above)"
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -q --no-install-recommends "$@" \
    || die "apt-get install $* failed (see the error above)"
}
