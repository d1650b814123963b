#!/bin/sh
# SPDX-License-Identifier: MIT
#
# gen-certs.sh DIR: writes self-signed test certificates for CN=localhost into DIR, valid for one
# day from now, made with the openssl command line:
#   DIR/ec.crt   DIR/ec.key    ECDSA P-256
#   DIR/ec2.crt  DIR/ec2.key   a second ECDSA P-256 pair (certificate reload tests)
#   DIR/rsa.crt  DIR/rsa.key   RSA 2048
# Keys are never committed: tests call this script into a temporary directory.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"

# -x509 self-signs in one step; the SAN matters because clients match names against it, not the
# CN (RFC 6125 section 6.4.4).
gen() {
    name=$1
    shift
    openssl req -x509 -nodes -days 1 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/$name.key" -out "$dir/$name.crt" "$@" 2>/dev/null
    chmod 600 "$dir/$name.key"
}

gen ec -newkey ec -pkeyopt ec_paramgen_curve:prime256v1
gen ec2 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1
gen rsa -newkey rsa:2048
