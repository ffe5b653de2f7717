// Verifies a keyhole permit with Node.js's built-in crypto module, as an
// implementation independent of libkeyhole.
//
// usage: node jose_verify.js PUBLIC_JWK_FILE TOKEN_FILE
//
// Prints the RFC 7638 thumbprint of the JWK on stdout. Exits 0 when the
// token is a JWS with alg EdDSA whose kid is that thumbprint and whose
// Ed25519 signature verifies with the JWK, 1 when it is not, and 2 on a
// usage error.
'use strict';

const crypto = require('crypto');
const fs = require('fs');

if (process.argv.length !== 4) {
  console.error('usage: node jose_verify.js PUBLIC_JWK_FILE TOKEN_FILE');
  process.exit(2);
}

const jwk = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const token = fs.readFileSync(process.argv[3], 'ascii').trim();

// RFC 7638 section 3: only the required members of an OKP key, in
// lexicographic order, with no whitespace. JSON.stringify keeps insertion
// order, and the values are base64url strings that need no escaping.
const required = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
const thumbprint = crypto.createHash('sha256').update(required).digest('base64url');
console.log(thumbprint);

const segments = token.split('.');
if (segments.length !== 3) {
  console.error(`token has ${segments.length} segments, expected 3`);
  process.exit(1);
}

const header = JSON.parse(Buffer.from(segments[0], 'base64url').toString('utf8'));
if (header.alg !== 'EdDSA' || header.kid !== thumbprint) {
  console.error(`header alg ${header.alg} or kid ${header.kid} does not match the JWK`);
  process.exit(1);
}

const key = crypto.createPublicKey({
  key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x },
  format: 'jwk',
});
const signingInput = Buffer.from(`${segments[0]}.${segments[1]}`, 'ascii');
const signature = Buffer.from(segments[2], 'base64url');
if (!crypto.verify(null, signingInput, key, signature)) {
  console.error('signature does not verify');
  process.exit(1);
}
process.exit(0);
