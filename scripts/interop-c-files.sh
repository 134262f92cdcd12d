#!/usr/bin/env bash
# The C tool's files and ours, checked against each other with both tools on this machine:
# key pairs, root and server certificates, and the device's X.509 certificate, each written by
# one tool and read (and where the other can, used) by the other; byte for byte where the
# output is deterministic. The test suite (crates/xtt-files/tests/c_files.rs) compares our
# layouts with a transcription of the C code, because ../shared/vectors holds no C-written key
# file or certificate; this script is the check against the C tool itself. It needs the C
# reference built outside the repository (CREF, default /work/cref: prefix/bin/xtt) and
# openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
CREF=${CREF:-/work/cref}
C=$CREF/prefix/bin/xtt
[ -x "$C" ] || { echo "error: no C xtt tool at $C (build the C reference, see BENCHMARKS.md)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "error: openssl is needed" >&2; exit 1; }
cargo build --release -j2 -p xtt-cli
R=$PWD/target/release/xtt
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
fails=0
check() { # check NAME COMMAND...: runs COMMAND, prints ok or FAIL
    local name=$1
    shift
    if "$@" >/dev/null 2>"$W/err"; then
        echo "ok    $name"
    else
        echo "FAIL  $name: $(tr '\n' ' ' <"$W/err")"
        fails=$((fails + 1))
    fi
}
# An X.509 certificate as openssl prints it, without its serial (random in both tools) and
# signature (randomised ECDSA).
x509_fields() {
    openssl x509 -inform DER -in "$1" -noout -text -certopt no_serial,no_sigdump
}
# The length of the serial, in bytes.
serial_len() { openssl x509 -inform DER -in "$1" -noout -serial | sed 's/^serial=//' | tr -d '\n' | wc -c; }

# Key pairs: each tool reads the other's.
"$C" genkeypair -k c_keys.asn1.bin >/dev/null 2>&1
"$R" keys generate -k r_keys.asn1.bin >/dev/null
check "our xtt info reads a C key pair" "$R" info c_keys.asn1.bin
check "C key pair and ours have the same size (121 bytes)" \
    test "$(stat -c %s c_keys.asn1.bin)" = "$(stat -c %s r_keys.asn1.bin)"
check "C key pair and ours are 0600" \
    test "$(stat -c %a c_keys.asn1.bin) $(stat -c %a r_keys.asn1.bin)" = "600 600"

# Root certificates (81 bytes, deterministic): the same root id and key give the same bytes.
head -c 16 /dev/urandom >root_id.bin
"$C" genrootcert -k r_keys.asn1.bin -d root_id.bin -c c_root_cert.bin >/dev/null 2>&1
"$R" cert root -k r_keys.asn1.bin -d root_id.bin -c r_root_cert.bin >/dev/null
check "root certificate from our key: C and ours byte for byte" cmp c_root_cert.bin r_root_cert.bin
"$C" genrootcert -k c_keys.asn1.bin -d root_id.bin -c c_root2.bin >/dev/null 2>&1
"$R" cert root -k c_keys.asn1.bin -d root_id.bin -c r_root2.bin >/dev/null
check "root certificate from a C key: C and ours byte for byte" cmp c_root2.bin r_root2.bin

# Server certificates: each tool signs one for the same server key under the same root; each
# tool's reader takes the other's, and all but the signature is the same.
"$C" genkeypair -k server_keys.asn1.bin >/dev/null 2>&1
# (The C tool writes server_cert.bin whatever -c says.)
"$C" genservercert -r c_root_cert.bin -k r_keys.asn1.bin -s server_keys.asn1.bin >/dev/null 2>&1
mv server_cert.bin c_server_cert.bin
"$R" cert server -r r_root_cert.bin -k r_keys.asn1.bin -s server_keys.asn1.bin \
    -c r_server_cert.bin >/dev/null
check "server certificates: same size" \
    test "$(stat -c %s c_server_cert.bin)" = "$(stat -c %s r_server_cert.bin)"
check "server certificates: same bytes before the signature" \
    cmp -n "$(($(stat -c %s c_server_cert.bin) - 64))" c_server_cert.bin r_server_cert.bin
mkdir beside
cp r_root_cert.bin beside/root_cert.bin
cp c_server_cert.bin beside/server_cert.bin
check "our xtt info verifies the C server certificate under the root" \
    grep -q "verifies under root_cert.bin" <("$R" info beside/server_cert.bin)
# C's infocert prints the fields (and always exits 1): the same text for both certificates.
check "C infocert reads our server certificate as it reads its own" \
    cmp <("$C" infocert -s r_server_cert.bin || true) <("$C" infocert -s c_server_cert.bin || true)

# The device's X.509 certificate: the same fields but for the random serial; both self-signatures
# verify.
head -c 16 /dev/urandom >id.bin
"$C" genx509cert -k c_keys.asn1.bin -d id.bin -c c_x509.der >/dev/null 2>&1
"$R" cert x509 -k c_keys.asn1.bin -d id.bin -c r_x509.der >/dev/null
check "X.509: the same fields but the serial (version, names, validity, key, algorithms)" \
    cmp <(x509_fields c_x509.der) <(x509_fields r_x509.der)
check "X.509: serials of the same length (20 bytes)" \
    test "$(serial_len c_x509.der) $(serial_len r_x509.der)" = "40 40"
for who in c r; do
    openssl x509 -inform DER -in ${who}_x509.der -out ${who}_x509.pem
    name=$([ $who = c ] && echo "the C tool" || echo "us")
    check "X.509 written by $name: self-signature verifies (openssl)" \
        openssl verify -check_ss_sig -partial_chain -CAfile ${who}_x509.pem ${who}_x509.pem
done
check "our xtt info reads the C X.509 certificate" "$R" info c_x509.der

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all checks passed"
