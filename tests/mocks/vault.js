// A loopback stand-in for HashiCorp Vault's HTTP API, enough for the
// vault backend: JWT auth login, token lookup-self and revoke-self,
// KV v2 and KV v1 reads, dynamic credentials with leases, and lease
// lookup and revoke. It checks what Vault checks: the JWT's signature
// against the exported jwks.json, its expiry, the role's
// bound_audiences, bound_subject and bound_claims, a live token on
// every other call, and the namespace header when one is configured.
// Like Vault, revoking a token also revokes the leases it created.
//
// usage: node vault.js CONFIG.json CERT_DIR PORT_FILE [server|wrong]
//
// CONFIG.json:
//   {"issuer": URL, "jwks": PATH, "root_token": TEXT,
//    "namespace": TEXT (optional), "auth_mount": "jwt",
//    "roles": {NAME: {"bound_audiences": [..], "bound_subject": TEXT,
//                     "bound_claims": {CLAIM: VALUE}, "token_ttl": S}},
//    "audit_log": PATH (optional: JSON lines like a Vault file audit
//                 device, one per login and per dynamic credential),
//    "mounts": {NAME: {"type": "kv2"|"kv1", "data": {PATH: {...}}}
//             | {"type": "database", "roles": {ROLE: {"ttl": S}}}}}
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const common = require('./common');

const [configPath, certDir, portFile, cert] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const tokens = new Map();  // token -> {accessor, expires, role, leases}
const leases = new Map();  // lease_id -> {expires, token}

function vaultError(res, status, messages) {
	common.sendJson(res, status, { errors: messages });
}

// Vault's own error bodies for the statuses a test plan scripts.
function errorFor(status) {
	const messages = {
		400: ['invalid request'],
		403: ['permission denied'],
		404: [],
		429: ['request path "secret/data/app": rate limit quota exceeded'],
		500: ['internal error'],
		503: ['Vault is sealed'],
	};
	return [{ errors: messages[status] || ['error'] }, {}];
}

function audit(record) {
	if (config.audit_log)
		fs.appendFileSync(config.audit_log, JSON.stringify(record) + '\n');
}

function now() {
	return Math.floor(Date.now() / 1000);
}

function newToken(role, ttl) {
	const token = 'hvs.' + crypto.randomBytes(18).toString('base64url');
	const entry = {
		accessor: crypto.randomBytes(12).toString('hex'),
		expires: now() + ttl,
		role,
		leases: [],
	};

	tokens.set(token, entry);
	return [token, entry];
}

function liveToken(req) {
	const token = req.headers['x-vault-token'];
	const entry = token && tokens.get(token);

	if (!entry)
		return null;
	if (entry.expires <= now()) {
		revokeToken(token);
		return null;
	}
	return { token, entry };
}

function revokeToken(token) {
	const entry = tokens.get(token);

	if (!entry)
		return;
	for (const id of entry.leases)
		leases.delete(id);
	tokens.delete(token);
}

// Vault's bound_claims accept a list of values, and globs when
// bound_claims_type is "glob"; the mock accepts an exact value, a list,
// or "*" for "present".
function claimMatches(actual, bound) {
	const allowed = Array.isArray(bound) ? bound : [bound];

	return actual !== undefined &&
		allowed.some((v) => v === '*' || v === actual);
}

async function login(req, res, body, mount) {
	const params = JSON.parse(body.toString('utf8') || '{}');
	const role = config.roles[params.role];

	if (mount !== (config.auth_mount || 'jwt'))
		return vaultError(res, 404, [`no handler for route "auth/${mount}/login". route entry not found.`]);
	if (typeof params.jwt !== 'string' || typeof params.role !== 'string')
		return vaultError(res, 400, ['missing role or jwt']);
	if (!role)
		return vaultError(res, 400, [`role "${params.role}" could not be found`]);

	let payload;
	try {
		({ payload } = await common.verifyJwt(params.jwt, {
			jwksPath: config.jwks,
			issuer: config.issuer,
			audience: role.bound_audiences,
			algorithms: role.supported_algs || ['RS256', 'ES256'],
		}));
	} catch (e) {
		return vaultError(res, 400, [`error validating token: ${e.message}`]);
	}
	if (role.bound_subject && payload.sub !== role.bound_subject)
		return vaultError(res, 400, ['sub claim does not match bound subject']);
	for (const [claim, bound] of Object.entries(role.bound_claims || {})) {
		if (!claimMatches(payload[claim], bound))
			return vaultError(res, 400, [`claim "${claim}" does not match any associated bound claim values`]);
	}

	const ttl = role.token_ttl || 300;
	const [token, entry] = newToken(params.role, ttl);
	audit({ type: 'login', role: params.role, iss: payload.iss,
		sub: payload.sub, aud: payload.aud,
		permit_jti: payload.permit_jti || null, accessor: entry.accessor });
	common.sendJson(res, 200, {
		request_id: crypto.randomUUID(), lease_id: '', renewable: false,
		lease_duration: 0, data: null, wrap_info: null, warnings: null,
		auth: {
			client_token: token, accessor: entry.accessor,
			policies: ['default', params.role], token_policies: ['default', params.role],
			metadata: { role: params.role }, lease_duration: ttl,
			renewable: true, entity_id: '', token_type: 'service', orphan: true,
		},
	});
}

function readKv(res, mount, subPath) {
	const prefix = mount.type === 'kv2' ? 'data/' : '';

	if (!subPath.startsWith(prefix))
		return vaultError(res, 404, []);
	const data = mount.data[subPath.slice(prefix.length)];
	if (!data)
		return vaultError(res, 404, []);
	const inner = mount.type === 'kv2' ?
		{ data, metadata: { created_time: new Date().toISOString(), version: 1, destroyed: false } } :
		data;
	common.sendJson(res, 200, {
		request_id: crypto.randomUUID(), lease_id: '', renewable: false,
		lease_duration: mount.type === 'kv2' ? 0 : 2764800, data: inner,
		wrap_info: null, warnings: null, auth: null,
	});
}

function readCreds(res, name, mount, subPath, owner) {
	const match = /^creds\/([\w.-]+)$/.exec(subPath);
	const role = match && mount.roles[match[1]];

	if (!role)
		return vaultError(res, 400, [`unknown role: ${match ? match[1] : subPath}`]);
	const id = `${name}/creds/${match[1]}/${crypto.randomBytes(12).toString('base64url')}`;
	leases.set(id, { expires: now() + (role.ttl || 600), token: owner.token });
	owner.entry.leases.push(id);
	audit({ type: 'creds', lease_id: id, accessor: owner.entry.accessor });
	common.sendJson(res, 200, {
		request_id: crypto.randomUUID(), lease_id: id, renewable: true,
		lease_duration: role.ttl || 600,
		data: { username: `v-jwt-${match[1]}-${crypto.randomBytes(4).toString('hex')}`,
			password: crypto.randomBytes(15).toString('base64url') },
		wrap_info: null, warnings: null, auth: null,
	});
}

function tokenCall(req, res, route, caller) {
	if (route === 'auth/token/lookup-self' && req.method === 'GET') {
		return common.sendJson(res, 200, { data: {
			accessor: caller.entry.accessor, policies: ['default', caller.entry.role],
			ttl: caller.entry.expires - now(), meta: { role: caller.entry.role },
			display_name: `jwt-${caller.entry.role}` } });
	}
	if (route === 'auth/token/revoke-self' && req.method === 'POST') {
		revokeToken(caller.token);
		res.writeHead(204);
		return res.end();
	}
	if (route === 'auth/token/accessors' && caller.token === config.root_token) {
		const keys = [...tokens.values()].filter((t) => t.expires > now())
			.map((t) => t.accessor);
		return common.sendJson(res, 200, { data: { keys } });
	}
	return vaultError(res, 403, ['permission denied']);
}

function leaseCall(req, res, route, body) {
	const leaseId = JSON.parse(body.toString('utf8') || '{}').lease_id;
	const lease = leases.get(leaseId);

	if (!lease || lease.expires <= now())
		return vaultError(res, 400, ['invalid lease']);
	if (route === 'sys/leases/lookup')
		return common.sendJson(res, 200, { data: { id: leaseId, ttl: lease.expires - now() } });
	leases.delete(leaseId);
	res.writeHead(204);
	res.end();
}

async function handler(req, res, body) {
	const url = new URL(req.url, 'https://127.0.0.1');
	const route = url.pathname.replace(/^\/v1\//, '');
	const loginMatch = /^auth\/([\w.-]+)\/login$/.exec(route);

	if (config.namespace && req.headers['x-vault-namespace'] !== config.namespace)
		return vaultError(res, 404, [`no handler for route "${route}". route entry not found.`]);
	if (loginMatch && req.method === 'POST')
		return login(req, res, body, loginMatch[1]);

	const caller = liveToken(req);
	if (!caller && req.headers['x-vault-token'] === config.root_token && config.root_token) {
		if (route === 'auth/token/accessors' || route === 'sys/leases/lookup') {
			const root = { token: config.root_token, entry: {} };
			return route.startsWith('sys/') ? leaseCall(req, res, route, body) :
				tokenCall(req, res, route, root);
		}
	}
	if (!caller)
		return vaultError(res, 403, ['permission denied']);
	if (route.startsWith('auth/token/'))
		return tokenCall(req, res, route, caller);
	if (route === 'sys/leases/revoke' && req.method === 'PUT')
		return leaseCall(req, res, route, body);

	const [name, ...rest] = route.split('/');
	const mount = config.mounts[name];
	if (!mount || req.method !== 'GET')
		return vaultError(res, 404, [`no handler for route "${route}". route entry not found.`]);
	if (mount.type === 'database')
		return readCreds(res, name, mount, rest.join('/'), caller);
	return readKv(res, mount, rest.join('/'));
}

common.startMock({ certDir, cert, portFile, handler, errorFor });
