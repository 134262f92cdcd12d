#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs whatever the tests need and is missing,
# then runs every test. Tests that need an installed part fail (never skip) when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- what the tests need -------------------------------------------------------------------
# One line per Debian package a test needs: "proof:package", where the proof is a command on
# PATH, or an absolute path that exists once the package is installed (some tools live in
# /usr/sbin, which is not on an ordinary user's PATH).
APT_NEEDS=(
    "python3:python3"
    "chromium:chromium"
    "chromedriver:chromium-driver"
    "zbarimg:zbar-tools"
    "pg_ctlcluster:postgresql"
    "openssl:openssl"
    "/usr/sbin/update-ca-certificates:ca-certificates"
)
# One line per Python test peer: "importable-module:pip-requirement".
PIP_NEEDS=(
    "pycose:pycose"
    "jwcrypto:jwcrypto"
)

have() {
    case $1 in
        /*) [ -e "$1" ] ;;
        *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}
apt_install() {
    log "installing Debian packages: $*"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}

need_apt=()
for pair in "${APT_NEEDS[@]}"; do
    proof=${pair%:*} pkg=${pair##*:}
    have "$proof" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then apt_install "${need_apt[@]}"; fi

# Python peers the system's python3 lacks go into a virtual environment of this checkout
# (target/test-python; it sees the system's packages too), which then comes first on PATH for
# the tests: Debian's own python3 refuses `pip install` (PEP 668) and may have no pip at all.
venv=target/test-python
if [ -x "$venv/bin/python3" ]; then export PATH="$PWD/$venv/bin:$PATH"; fi
need_pip=()
for pair in ${PIP_NEEDS[@]+"${PIP_NEEDS[@]}"}; do
    module=${pair%%:*} req=${pair#*:}
    python3 -c "import $module" >/dev/null 2>&1 || need_pip+=("$req")
done
if ((${#need_pip[@]})); then
    if [ ! -x "$venv/bin/python3" ]; then
        python3 -c "import ensurepip, venv" >/dev/null 2>&1 || apt_install python3-venv
        python3 -m venv --system-site-packages "$venv"
        export PATH="$PWD/$venv/bin:$PATH"
    fi
    log "installing Python test peers into $venv: ${need_pip[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi

if [ ! -d ../shared/vectors ]; then
    echo "error: ../shared/vectors (the C reference's known-answer data) is missing" >&2
    exit 1
fi

# --- PostgreSQL for the storage tests ----------------------------------------------------------
# The registry's PostgreSQL backend is tested against a real server: a throwaway cluster owned by
# this run (initdb into a temporary directory, unix socket, plus TLS on a loopback port), stopped
# and deleted on exit (scripts/lib/pg-cluster.sh). Tests read its URL from XTT_TEST_POSTGRES_URL
# (TLS tests: XTT_TEST_POSTGRES_TLS_URL without sslmode, and the CA in XTT_TEST_POSTGRES_CA) and
# fail without.
# shellcheck source=scripts/lib/pg-cluster.sh
. scripts/lib/pg-cluster.sh  # the working directory is the repository root (see the cd above)
pg_cluster_prepare /tmp/xtt-test-pg.XXXXXX
trap pg_cluster_stop EXIT
log "starting a throwaway PostgreSQL ($pg_bin) in $pg_dir"
pg_cluster_initdb
# TLS for the TLS tests: a throwaway CA and a server certificate for 127.0.0.1, served on a free
# loopback port next to the socket (PostgreSQL never uses TLS on unix sockets).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=xtt test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$pg_dir/ca.key" -out "$pg_dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$pg_dir/server.key" -out "$pg_dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$pg_dir/server.ext"
openssl x509 -req -in "$pg_dir/server.csr" -CA "$pg_dir/ca.pem" -CAkey "$pg_dir/ca.key" -days 2 \
    -CAcreateserial -extfile "$pg_dir/server.ext" -out "$pg_dir/server.crt" 2>/dev/null
chmod 600 "$pg_dir/server.key"
if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir/server.key" "$pg_dir/server.crt"; fi
pg_cluster_start "-c listen_addresses=127.0.0.1 -c ssl=on \
    -c ssl_cert_file=$pg_dir/server.crt -c ssl_key_file=$pg_dir/server.key"
export XTT_TEST_POSTGRES_URL="postgresql:///postgres?host=$pg_dir&port=$pg_port&user=$pg_user"
export XTT_TEST_POSTGRES_TLS_URL="postgres://$pg_user@127.0.0.1:$pg_port/postgres"
export XTT_TEST_POSTGRES_CA="$pg_dir/ca.pem"

# --- the tests ---------------------------------------------------------------------------------
log "cargo test (workspace, release-optimised dependencies)"
cargo test --workspace --all-targets --locked

log "doc tests"
cargo test --workspace --doc --locked

# Fuzz smoke run: every target for a few seconds. cargo-fuzz needs a nightly toolchain; like every
# other part the tests need it is installed when missing (minimal profile), and the run fails if
# it cannot be.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing the nightly toolchain (minimal profile) for cargo-fuzz"
    rustup toolchain install nightly --profile minimal ||
        { echo "error: cannot install the nightly toolchain the fuzz run needs" >&2; exit 1; }
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet ||
        { echo "error: cannot install cargo-fuzz" >&2; exit 1; }
fi
# Every target declared in fuzz/Cargo.toml is run: a listing that fails, is empty or misses one
# fails the script instead of fuzzing less than it claims.
targets=$(cargo +nightly fuzz list --fuzz-dir fuzz) ||
    { echo "error: cargo fuzz list failed" >&2; exit 1; }
declared=$(grep -c '^\[\[bin\]\]' fuzz/Cargo.toml || true)
listed=$(wc -w <<<"$targets")
if [ "$listed" -eq 0 ] || [ "$listed" -ne "$declared" ]; then
    echo "error: cargo fuzz list gives $listed targets, fuzz/Cargo.toml declares $declared" >&2
    exit 1
fi
log "fuzz smoke run: $listed targets, ${FUZZ_SECONDS:-10}s each"
for target in $targets; do
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- \
        -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 2>&1 | tail -n 3
done
