// A loopback stand-in for a 1Password Connect server: GET
// /v1/vaults/<vault> and GET /v1/vaults/<vault>/items/<item>,
// authenticated with a Connect access token as a bearer token that is
// granted a list of vaults. Errors use Connect's shape,
// {"status": N, "message": TEXT}.
//
// usage: node onepassword.js CONFIG.json CERT_DIR PORT_FILE [server|wrong]
//
// CONFIG.json:
//   {"tokens": {TOKEN: [VAULT_ID, ...]},
//    "vaults": {VAULT_ID: {"name": TEXT, "items": {ITEM_ID: {"title": TEXT,
//               "fields": [{"id", "label", "type", "value"}]}}}}}
'use strict';

const fs = require('fs');
const common = require('./common');

const [configPath, certDir, portFile, cert] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));

function connectError(res, status, message) {
	common.sendJson(res, status, { status, message });
}

function errorFor(status) {
	const messages = {
		401: 'Invalid token signature',
		403: 'Authorization: vault is not in scope',
		404: 'item not found',
		429: 'too many requests',
		500: 'internal server error',
	};
	return [{ status, message: messages[status] || `status ${status}` }, {}];
}

async function handler(req, res) {
	const auth = req.headers.authorization || '';
	const vaults = auth.startsWith('Bearer ') && config.tokens[auth.slice(7)];
	const match = /^\/v1\/vaults\/([a-z0-9]+)(?:\/items\/([a-z0-9]+))?$/.exec(req.url);

	if (!vaults)
		return connectError(res, 401, auth ? 'Invalid token signature' : 'Missing authorization header');
	if (!match || req.method !== 'GET')
		return connectError(res, 404, 'Not Found');
	const [, vaultId, itemId] = match;
	const vault = config.vaults[vaultId];
	if (!vaults.includes(vaultId))
		return connectError(res, 403, `Authorization: vault ${vaultId} is not in scope`);
	if (!vault)
		return connectError(res, 404, 'vault not found');
	if (!itemId)
		return common.sendJson(res, 200, { id: vaultId, name: vault.name, type: 'USER_CREATED' });
	const item = vault.items[itemId];
	if (!item)
		return connectError(res, 404, 'item not found');
	common.sendJson(res, 200, { id: itemId, title: item.title, vault: { id: vaultId },
		category: 'LOGIN', fields: item.fields });
}

common.startMock({ certDir, cert, portFile, handler, errorFor });
