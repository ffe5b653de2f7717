#!/bin/sh
# Makes a throwaway certificate authority and server certificates for the
# loopback mocks: DIR/ca.pem (the CA file backends are configured with),
# DIR/server.{key,pem} for localhost and 127.0.0.1, and
# DIR/wrong.{key,pem} for a name that no test connects to, which the TLS
# name-mismatch tests serve. Keys are P-256 and live only for the test.
set -eu

dir=${1:?usage: test_ca.sh DIR}
mkdir -p "$dir"
cd "$dir"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout ca.key -out ca.pem -days 2 -subj "/CN=keyhole test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign" 2>/dev/null

issue() {
	name=$1
	san=$2
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$name.key" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" \
		>"$name.ext"
	openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key \
		-CAcreateserial -days 2 -extfile "$name.ext" \
		-out "$name.pem" 2>/dev/null
	rm -f "$name.csr" "$name.ext"
}

issue server "DNS:localhost,IP:127.0.0.1,IP:::1"
issue wrong "DNS:wrong-name.invalid"
chmod 0600 ca.key server.key wrong.key
