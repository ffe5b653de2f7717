// A loopback stand-in for Doppler's v3 API: GET
// /v3/configs/config/secret and GET /v3/me, authenticated with a
// service token as a bearer token. A service token is scoped to one
// project and config, as Doppler's are. Errors use Doppler's shape,
// {"messages": [...], "success": false}.
//
// usage: node doppler.js CONFIG.json CERT_DIR PORT_FILE [server|wrong]
//
// CONFIG.json:
//   {"tokens": {TOKEN: {"project": TEXT, "config": TEXT}},
//    "secrets": {PROJECT: {CONFIG: {NAME: {"raw": TEXT, "computed": TEXT}}}}}
'use strict';

const fs = require('fs');
const common = require('./common');

const [configPath, certDir, portFile, cert] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));

function dopplerError(res, status, message, headers) {
	common.sendJson(res, status, { messages: [message], success: false }, headers);
}

function errorFor(status) {
	const messages = {
		401: 'Invalid Auth token',
		403: 'You do not have access to this config',
		404: 'Could not find requested secret',
		429: 'Rate limit exceeded',
		500: 'Internal Server Error',
	};
	return [{ messages: [messages[status] || `status ${status}`], success: false },
		status === 429 ? { 'Retry-After': '1' } : {}];
}

// Returns the token's scope, or sends 401 and returns null.
function authenticate(req, res) {
	const auth = req.headers.authorization || '';
	const scope = auth.startsWith('Bearer ') && config.tokens[auth.slice(7)];

	if (!auth)
		dopplerError(res, 401, 'Missing Authorization header');
	else if (!scope)
		dopplerError(res, 401, 'Invalid Auth token');
	return scope || null;
}

function readSecret(res, url, scope) {
	const project = url.searchParams.get('project');
	const configName = url.searchParams.get('config');
	const name = url.searchParams.get('name');

	if (!project || !configName || !name)
		return dopplerError(res, 400, 'project, config and name are required');
	if (project !== scope.project || configName !== scope.config)
		return dopplerError(res, 403, 'You do not have access to this config');
	const value = ((config.secrets[project] || {})[configName] || {})[name];
	if (!value)
		return dopplerError(res, 404, 'Could not find requested secret');
	common.sendJson(res, 200, { name, value, success: true });
}

async function handler(req, res) {
	const url = new URL(req.url, 'https://127.0.0.1');
	const scope = authenticate(req, res);

	if (!scope)
		return;
	if (req.method === 'GET' && url.pathname === '/v3/configs/config/secret')
		return readSecret(res, url, scope);
	if (req.method === 'GET' && url.pathname === '/v3/me') {
		return common.sendJson(res, 200, { type: 'service_token',
			name: 'keyhole', slug: 'mock-token',
			workplace: { name: 'Mock Workplace', slug: 'mock' } });
	}
	dopplerError(res, 404, 'Not Found');
}

common.startMock({ certDir, cert, portFile, handler, errorFor });
