// A loopback stand-in for Entra ID's token endpoint and Azure Key
// Vault, served by one process because both URLs are backend config.
//
// Token endpoint, POST /<tenant>/oauth2/v2.0/token: a client_credentials
// request whose client_assertion is checked as Entra checks a workload
// identity federation assertion. The app's federated credential names
// an issuer, a subject and an audience. The assertion's iss and sub
// must equal them exactly, and its aud must be that audience (by
// default api://AzureADTokenExchange). Its signature must verify
// against the issuer's published JWKS, and it must be unexpired and
// RS256, because Entra does not accept ES256 assertions. Failures answer with Entra's
// error shape: {"error", "error_description": "AADSTSnnnn: ...",
// "error_codes", "timestamp", "trace_id", "correlation_id"}.
//
// Key Vault, GET /secrets/<name>?api-version=7.4: needs a bearer token
// this mock issued and unexpired, and api-version 7.4.
//
// usage: node azure.js CONFIG.json CERT_DIR PORT_FILE [server|wrong]
//
// CONFIG.json:
//   {"tenant_id": TEXT, "jwks": PATH,
//    "apps": {CLIENT_ID: {"issuer": URL, "subject": TEXT,
//                         "audience": "api://AzureADTokenExchange"}},
//    "secrets": {NAME: VALUE}}
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const common = require('./common');

const [configPath, certDir, portFile, cert] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const accessTokens = new Map();  // token -> expiry (unix seconds)
const SCOPE = 'https://vault.azure.net/.default';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

function entraError(res, status, error, code, text) {
	const traceId = crypto.randomUUID();
	const correlationId = crypto.randomUUID();
	const timestamp = new Date().toISOString().replace('T', ' ').replace(/\..*/, 'Z');

	common.sendJson(res, status, {
		error,
		error_description: `AADSTS${code}: ${text} Trace ID: ${traceId} ` +
			`Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
		error_codes: [code],
		timestamp,
		trace_id: traceId,
		correlation_id: correlationId,
		error_uri: `https://login.microsoftonline.com/error?code=${code}`,
	});
}

function keyVaultError(res, status, code, message, headers) {
	common.sendJson(res, status, { error: { code, message } }, headers);
}

// The bodies a test plan's bare statuses get: Key Vault's shapes for
// the vault paths, Entra's for the token endpoint.
function errorFor(status, req) {
	if (req.url.includes('/oauth2/')) {
		return [{ error: status === 429 ? 'temporarily_unavailable' : 'invalid_client',
			error_description: `AADSTS90000: mock status ${status}.`,
			error_codes: [90000] }, {}];
	}
	const codes = {
		401: ['Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.'],
		403: ['Forbidden', 'The user, group or application does not have secrets get permission.'],
		404: ['SecretNotFound', 'A secret with (name/id) was not found in this key vault.'],
		429: ['Throttled', 'Request was not processed because too many requests were received.'],
		500: ['InternalServerError', 'An internal error occurred.'],
	};
	const [code, message] = codes[status] || ['Error', `status ${status}`];
	return [{ error: { code, message } }, status === 429 ? { 'Retry-After': '1' } : {}];
}

function now() {
	return Math.floor(Date.now() / 1000);
}

function assertionAlg(token) {
	try {
		const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8'));
		return header.alg;
	} catch (e) {
		return null;
	}
}

async function checkAssertion(res, app, assertion) {
	// NOTE: the AADSTS code for a non-RS256 assertion is the generic
	// "invalid or malformed JWT" one; Entra's exact code may differ.
	if (assertionAlg(assertion) !== 'RS256') {
		entraError(res, 401, 'invalid_client', 50027,
			'JWT token is invalid or malformed. Only RS256 client assertions are supported.');
		return null;
	}
	let payload;
	try {
		({ payload } = await common.verifyJwt(assertion, {
			jwksPath: config.jwks, algorithms: ['RS256'],
		}));
	} catch (e) {
		if (e.code === 'ERR_JWT_EXPIRED')
			entraError(res, 401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
		else
			entraError(res, 401, 'invalid_client', 700027, `Client assertion failed signature validation. (${e.code})`);
		return null;
	}
	const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
	if (payload.iss !== app.issuer || payload.sub !== app.subject ||
	    !aud.includes(app.audience || 'api://AzureADTokenExchange')) {
		entraError(res, 400, 'invalid_request', 70021,
			'No matching federated identity record found for presented assertion. ' +
			`Assertion Issuer: '${payload.iss}'. Assertion Subject: '${payload.sub}'. ` +
			`Assertion Audience: '${aud.join(',')}'.`);
		return null;
	}
	return payload;
}

async function token(req, res, body, tenant) {
	const form = new URLSearchParams(body.toString('utf8'));
	const app = config.apps[form.get('client_id')];

	if (tenant !== config.tenant_id)
		return entraError(res, 400, 'invalid_request', 90002, `Tenant '${tenant}' not found.`);
	if (req.headers['content-type'] !== 'application/x-www-form-urlencoded')
		return entraError(res, 400, 'invalid_request', 900144, "The request body must contain the following parameter: 'grant_type'.");
	if (form.get('grant_type') !== 'client_credentials')
		return entraError(res, 400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
	if (!app)
		return entraError(res, 400, 'unauthorized_client', 700016,
			`Application with identifier '${form.get('client_id')}' was not found in the directory.`);
	if (form.get('scope') !== SCOPE)
		return entraError(res, 400, 'invalid_scope', 70011, 'The provided value for the input parameter \'scope\' is not valid.');
	if (form.get('client_assertion_type') !== ASSERTION_TYPE || !form.get('client_assertion'))
		return entraError(res, 401, 'invalid_client', 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
	if (!(await checkAssertion(res, app, form.get('client_assertion'))))
		return;

	const access = crypto.randomBytes(32).toString('base64url');
	accessTokens.set(access, now() + 3599);
	common.sendJson(res, 200, { token_type: 'Bearer', expires_in: 3599,
		ext_expires_in: 3599, access_token: access });
}

function getSecret(req, res, url, name) {
	const auth = req.headers.authorization || '';
	const expiry = accessTokens.get(auth.replace(/^Bearer /, ''));
	const challenge = { 'WWW-Authenticate': 'Bearer authorization="https://login.microsoftonline.com/' +
		`${config.tenant_id}", resource="https://vault.azure.net"` };

	if (url.searchParams.get('api-version') !== '7.4')
		return keyVaultError(res, 400, 'BadParameter', 'The request URI contains an invalid or missing api-version.');
	if (!auth.startsWith('Bearer '))
		return keyVaultError(res, 401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.', challenge);
	if (!expiry || expiry <= now())
		return keyVaultError(res, 401, 'Unauthorized', 'Invalid or expired access token.', challenge);
	if (!(name in config.secrets))
		return keyVaultError(res, 404, 'SecretNotFound',
			`A secret with (name/id) ${name} was not found in this key vault.`);
	const version = crypto.randomBytes(16).toString('hex');
	common.sendJson(res, 200, {
		value: config.secrets[name],
		id: `https://${req.headers.host}/secrets/${name}/${version}`,
		attributes: { enabled: true, created: now(), updated: now(),
			recoveryLevel: 'Recoverable+Purgeable' },
		tags: {},
	});
}

async function handler(req, res, body) {
	const url = new URL(req.url, 'https://127.0.0.1');
	const tokenMatch = /^\/([\w.-]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
	const secretMatch = /^\/secrets\/([0-9A-Za-z-]{1,127})\/?$/.exec(url.pathname);

	if (tokenMatch && req.method === 'POST')
		return token(req, res, body, tokenMatch[1]);
	if (secretMatch && req.method === 'GET')
		return getSecret(req, res, url, secretMatch[1]);
	keyVaultError(res, 404, 'NotFound', 'The requested resource was not found.');
}

common.startMock({ certDir, cert, portFile, handler, errorFor });
