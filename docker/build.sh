#!/usr/bin/env bash
# docker/build.sh - the one recipe that builds and installs pgproxy.
#
# The Dockerfile's builder stage runs it, CI runs it with --check, and the
# README's first command is `bash docker/build.sh --demo`, so the image, CI
# and a newcomer's machine build pgproxy the same way.  It installs missing
# Debian build packages (apt-get, only what `dpkg-query` says is missing),
# configures a Release build with CMake, and installs with `cmake --install`.
# It does not run the unit tests (CI does that in its own job) and does not
# touch Docker: there is no engine on the build machines.
#
# usage: bash docker/build.sh [--build-dir DIR] [--prefix DIR] [--no-deps] [MODE]
#   (no mode)       build into --build-dir (default <repo>/build, or $BUILD_DIR) and
#                   install into --prefix (default /opt/pgproxy, or $PREFIX); $DESTDIR
#                   is honoured for staged installs
#   --demo [ARGS]   also install postgresql-15, build, then run `pgproxy demo ARGS`
#   --check         build everything (unit tests too) in a temporary directory, install
#                   into a temporary prefix, smoke-test the installed binary the way the
#                   image runs it (the other modes build only the pgproxy binary)
#   --no-deps       do not check or install Debian packages
#   $JOBS           parallel build jobs (default: nproc)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$repo/build}
prefix=${PREFIX:-/opt/pgproxy}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
mode=install
deps=1
demo_args=()

build_packages=(cmake build-essential pkg-config libuv1-dev libpq-dev libsqlite3-dev libjson-c-dev
                libssl-dev check libmicrohttpd-dev prometheus)
# The demo needs a server; --check also needs pg_isready (the image's HEALTHCHECK).
server_packages=(postgresql-15 postgresql-client-15)

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '/^# usage:/,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while (($#)); do
    case $1 in
        --demo) mode=demo; shift; demo_args=("$@"); break ;;
        --check) mode=check ;;
        --build-dir) [[ $# -ge 2 ]] || die "--build-dir needs a value"; build_dir=$2; shift ;;
        --build-dir=*) build_dir=${1#*=} ;;
        --prefix) [[ $# -ge 2 ]] || die "--prefix needs a value"; prefix=$2; shift ;;
        --prefix=*) prefix=${1#*=} ;;
        --no-deps) deps=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

# Install the Debian packages that are missing (none installed: no apt at all).
ensure_packages() {
    local pkg missing=()
    if ! command -v dpkg-query >/dev/null; then
        say "not a Debian system: assuming these are installed: $*"
        return
    fi
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null ||
            die "missing packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})"
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qy install \
        --no-install-recommends "${missing[@]}"
}

# build [TARGET...]: no target = everything, unit tests included.
build() {
    local targets=()
    (($#)) && targets=(--target "$@")
    say "configuring (Release) in $build_dir"
    cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$prefix"
    say "building ${*:-everything} with $jobs jobs"
    cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
}

install_prefix() {
    say "installing into ${DESTDIR:-}$prefix"
    cmake --install "$build_dir" --prefix "$prefix"
}

# A TCP port on 127.0.0.1 nobody listens on, from $1 upwards.
free_port() {
    local p
    for ((p = $1; p < $1 + 200; p++)); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port from $1"
}

# Postgres server binaries for the end-to-end demo, the way `pgproxy demo` looks.
have_pg_server() {
    local d
    for d in "${PGP_PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
             /usr/lib/postgresql/*/bin; do
        [[ -n $d && -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && return 0
    done
    return 1
}

check_tmp=''
check_pid=''
check_cleanup() {
    if [[ -n $check_pid ]] && kill -0 "$check_pid" 2>/dev/null; then
        kill -KILL "$check_pid" 2>/dev/null || true
        wait "$check_pid" 2>/dev/null || true
    fi
    [[ -z $check_tmp ]] || rm -rf "$check_tmp"
}

# Smoke tests of an installed tree: what the image does at run time.
check_installed() {
    local bin=$prefix/bin/pgproxy conf=$prefix/share/pgproxy/config.toml

    say "check: pgproxy --version"
    "$bin" --version

    say "check: pgproxy --check-config -c $conf"
    "$bin" --check-config -c "$conf" >"$check_tmp/check-config.out" ||
        { cat "$check_tmp/check-config.out"; die "--check-config failed on the shipped config"; }

    # The image: configured by environment only, HEALTHCHECK = pg_isready on
    # the proxy port, STOPSIGNAL SIGTERM.  The upstream is deliberately down:
    # the health check is liveness of pgproxy itself (it answers FATAL 08006,
    # which pg_isready counts as "accepting connections").
    local port upstream env_vars
    port=$(free_port 16433)
    upstream=$(free_port $((port + 1)))
    env_vars=(PGPROXY_PROXY_LISTEN="127.0.0.1:$port" PGPROXY_UPSTREAM="127.0.0.1:$upstream")
    # Once the build has an admin listener, keep it off a possibly busy 9433.
    if grep -q '^\[admin\]' "$check_tmp/check-config.out"; then
        env_vars+=(PGPROXY_ADMIN_LISTEN="127.0.0.1:$(free_port $((upstream + 1)))")
    fi
    say "check: image runtime (${env_vars[*]}, upstream down)"
    (cd "$check_tmp" && exec env "${env_vars[@]}" "$bin" -c "$conf") \
        2>"$check_tmp/runtime.log" &
    check_pid=$!
    local i ok=0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$check_pid" 2>/dev/null || break
        if pg_isready -q -h 127.0.0.1 -p "$port" -t 2; then ok=1; break; fi
        sleep 0.2
    done
    if ((!ok)); then
        cat "$check_tmp/runtime.log" >&2
        die "HEALTHCHECK (pg_isready -h 127.0.0.1 -p $port) never passed"
    fi
    say "check: HEALTHCHECK passes; sending SIGTERM (STOPSIGNAL)"
    kill -TERM "$check_pid"
    local status=0
    wait "$check_pid" || status=$?
    check_pid=''
    if ((status != 0)); then
        cat "$check_tmp/runtime.log" >&2
        die "pgproxy exited with status $status on SIGTERM (want 0)"
    fi

    if have_pg_server; then
        say "check: pgproxy demo --no-wait (installed binary, real PostgreSQL)"
        (cd "$check_tmp" && "$bin" demo --no-wait)
    else
        say "check: SKIPPED pgproxy demo (no PostgreSQL server binaries)"
    fi
    say "check: all passed"
}

case $mode in
    install)
        ((deps)) && ensure_packages "${build_packages[@]}"
        build pgproxy
        install_prefix
        ;;
    demo)
        ((deps)) && ensure_packages "${build_packages[@]}" "${server_packages[@]}"
        build pgproxy
        say "running: $build_dir/pgproxy demo ${demo_args[*]}"
        exec "$build_dir/pgproxy" demo "${demo_args[@]}"
        ;;
    check)
        ((deps)) && ensure_packages "${build_packages[@]}" "${server_packages[@]}"
        check_tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgproxy-check.XXXXXX")
        trap check_cleanup EXIT
        build_dir=$check_tmp/build
        prefix=$check_tmp/prefix
        unset DESTDIR
        build
        install_prefix
        check_installed
        ;;
esac
