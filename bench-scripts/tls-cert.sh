#!/usr/bin/env bash
# Makes the test certificates of the TLS benchmarks: a test CA and an ECDSA
# P-256 server certificate for 127.0.0.1, ::1 and localhost signed by it.
#
#   bench-scripts/tls-cert.sh DIR
#
# Writes into DIR (created if missing):
#   ca.pem        the test CA's certificate: what clients trust (loadgen --ca,
#                 curl --cacert)
#   ca-key.pem    the CA's private key (only used to sign the server's)
#   cert.pem      the server's chain: leaf certificate, then the CA
#   key.pem       the server's private key (PKCS#8, P-256)
#
# Idempotent: a DIR whose files are all there, whose leaf is signed by its
# CA, matches its key and is valid for at least another day is left alone
# (so every system of every run serves the same certificate); otherwise all
# four are made anew. Needs the openssl command line (Debian's openssl).
set -euo pipefail

if [ "$#" -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [ "$#" -eq 1 ] && exit 0
    exit 2
fi
command -v openssl >/dev/null 2>&1 || {
    echo "tls-cert.sh: openssl not found (apt-get install -y openssl)" >&2
    exit 1
}

dir=$1
mkdir -p "$dir"
cd "$dir"

valid() {
    [ -s ca.pem ] && [ -s ca-key.pem ] && [ -s cert.pem ] && [ -s key.pem ] || return 1
    openssl verify -CAfile ca.pem cert.pem >/dev/null 2>&1 || return 1
    openssl x509 -in cert.pem -noout -checkend 86400 >/dev/null 2>&1 || return 1
    # The leaf's public key is the key's.
    [ "$(openssl x509 -in cert.pem -noout -pubkey 2>/dev/null | openssl sha256)" = \
      "$(openssl pkey -in key.pem -pubout 2>/dev/null | openssl sha256)" ] || return 1
    # The chain holds the CA after the leaf.
    [ "$(grep -c 'BEGIN CERTIFICATE' cert.pem)" -eq 2 ] || return 1
}

if valid; then
    echo "tls-cert.sh: $PWD already has a valid test CA and server certificate" >&2
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tls-cert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

# The CA: P-256, 10 years, for signing certificates only.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/ca-key.pem" -out "$tmp/ca.pem" -days 3650 -sha256 \
    -subj "/O=ringcast benchmarks/CN=ringcast benchmark test CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>"$tmp/log" \
    || { cat "$tmp/log" >&2; exit 1; }

# The server: P-256 key (PKCS#8), 825 days, for 127.0.0.1, ::1 and localhost.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/key.pem" 2>"$tmp/log" \
    || { cat "$tmp/log" >&2; exit 1; }
openssl req -new -key "$tmp/key.pem" -out "$tmp/server.csr" \
    -subj "/O=ringcast benchmarks/CN=localhost" 2>"$tmp/log" \
    || { cat "$tmp/log" >&2; exit 1; }
cat >"$tmp/ext.cnf" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -out "$tmp/leaf.pem" -days 825 -sha256 \
    -extfile "$tmp/ext.cnf" 2>"$tmp/log" \
    || { cat "$tmp/log" >&2; exit 1; }
cat "$tmp/leaf.pem" "$tmp/ca.pem" >"$tmp/cert.pem"

# Into place together; readable by the servers whatever user they run as.
chmod 644 "$tmp/ca.pem" "$tmp/cert.pem"
chmod 600 "$tmp/ca-key.pem" "$tmp/key.pem"
for f in ca.pem ca-key.pem cert.pem key.pem; do
    mv -f "$tmp/$f" "./$f"
done
valid || { echo "tls-cert.sh: the certificates made in $PWD do not verify" >&2; exit 1; }
echo "tls-cert.sh: wrote ca.pem, ca-key.pem, cert.pem (leaf + CA) and key.pem in $PWD" >&2
