#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs whatever the tests need and is missing,
# then runs every test. Tests that need an installed part fail (never skip) when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- what the tests need -------------------------------------------------------------------
# One line per Debian package a test needs: "command-that-proves-it-is-there:package".
APT_NEEDS=(
    "sqlite3:sqlite3"
    "chromium:chromium"
    "chromedriver:chromium-driver"
    "zbarimg:zbar-tools"
)
# One line per Python test peer: "importable-module:pip-requirement".
PIP_NEEDS=(
    "pycose:pycose"
    "jwcrypto:jwcrypto"
)

need_apt=()
for pair in "${APT_NEEDS[@]}"; do
    cmd=${pair%%:*} pkg=${pair##*:}
    command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    log "installing Debian packages: ${need_apt[*]}"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

need_pip=()
for pair in ${PIP_NEEDS[@]+"${PIP_NEEDS[@]}"}; do
    module=${pair%%:*} req=${pair#*:}
    python3 -c "import $module" >/dev/null 2>&1 || need_pip+=("$req")
done
if ((${#need_pip[@]})); then
    log "installing Python test peers: ${need_pip[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}"
fi

if [ ! -d ../shared/vectors ]; then
    echo "error: ../shared/vectors (the C reference's known-answer data) is missing" >&2
    exit 1
fi

# --- the tests ---------------------------------------------------------------------------------
log "cargo test (workspace, release-optimised dependencies)"
cargo test --workspace --all-targets --locked

log "doc tests"
cargo test --workspace --doc --locked

# Fuzz smoke run: every target for a few seconds when a nightly toolchain is available.
if rustup run nightly rustc --version >/dev/null 2>&1; then
    if ! command -v cargo-fuzz >/dev/null 2>&1; then
        log "installing cargo-fuzz"
        cargo install cargo-fuzz --locked --quiet
    fi
    if [ -d fuzz ]; then
        log "fuzz smoke run (${FUZZ_SECONDS:-10}s per target)"
        for target in $(cargo +nightly fuzz list --fuzz-dir fuzz); do
            cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- \
                -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 2>&1 | tail -n 3
        done
    fi
else
    log "no nightly toolchain: fuzz smoke run not possible here"
fi
