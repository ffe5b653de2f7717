// Shared plumbing for the loopback mocks of cloud secret services:
// an HTTPS server on 127.0.0.1 with a certificate from the test CA,
// bounded request bodies, JSON replies, JWT checks with the npm package
// jose against the JWKS that `keyhole oidc export` wrote, and a control
// endpoint through which a test scripts failures.
//
// Control endpoint (same server, same TLS):
//   POST /_mock/plan  {"match": TEXT, "steps": [STEP, ...]}
//     The next requests whose "<METHOD> <path> <X-Amz-Target>" contains
//     TEXT take one step each, in order: a number is a bare status with
//     the service's own error body, "ok" serves normally, and "slow",
//     "oversize", "malformed" and "redirect" misbehave in those ways.
//   GET  /_mock/log   every request seen so far (method, path, target)
//   POST /_mock/reset clears plans and the log
'use strict';

const fs = require('fs');
const https = require('https');
const path = require('path');

const npmDir = process.env.KH_NPM_DIR ||
	path.join(__dirname, '..', '..', 'build', 'npm', 'node_modules');
const BODY_MAX = 1024 * 1024;

function requireNpm(name) {
	return require(path.join(npmDir, name));
}

function readBody(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		let size = 0;

		req.on('data', (chunk) => {
			size += chunk.length;
			if (size > BODY_MAX) {
				reject(new Error('request body over 1 MiB'));
				req.destroy();
				return;
			}
			chunks.push(chunk);
		});
		req.on('end', () => resolve(Buffer.concat(chunks)));
		req.on('error', reject);
	});
}

function sendJson(res, status, value, headers) {
	const body = Buffer.from(JSON.stringify(value));

	res.writeHead(status, Object.assign({
		'Content-Type': 'application/json',
		'Content-Length': body.length,
	}, headers || {}));
	res.end(body);
}

// Verifies a JWT against the JWKS file on every call, so a test can
// rotate keys without restarting the mock. Throws with jose's reason.
async function verifyJwt(token, { jwksPath, issuer, audience, algorithms }) {
	const jose = requireNpm('jose');
	const jwks = JSON.parse(fs.readFileSync(jwksPath, 'utf8'));
	const keySet = jose.createLocalJWKSet(jwks);
	const { payload, protectedHeader } = await jose.jwtVerify(token, keySet, {
		issuer,
		audience,
		algorithms: algorithms || ['RS256', 'ES256'],
	});

	return { payload, header: protectedHeader };
}

function describe(req) {
	return `${req.method} ${req.url} ${req.headers['x-amz-target'] || ''}`;
}

// Applies the next scripted step for req, if any. Returns true when the
// step answered the request, false when the service should serve it.
function applyPlan(state, req, res, errorFor) {
	const key = describe(req);
	const plan = state.plans.find((p) => key.includes(p.match) &&
		p.steps.length > 0);

	if (!plan)
		return false;
	const step = plan.steps.shift();
	if (step === 'ok')
		return false;
	if (typeof step === 'number') {
		const [body, headers] = errorFor(step, req);
		sendJson(res, step, body, headers);
		return true;
	}
	if (step === 'slow') {
		// Holds the request open longer than any client timeout.
		setTimeout(() => { if (!res.writableEnded) res.destroy(); },
			60000);
		return true;
	}
	if (step === 'oversize') {
		res.writeHead(200, { 'Content-Type': 'application/json' });
		res.end(Buffer.alloc(BODY_MAX + 4096, 0x61));
		return true;
	}
	if (step === 'malformed') {
		res.writeHead(200, { 'Content-Type': 'application/json' });
		res.end('{"truncated": ');
		return true;
	}
	if (step === 'redirect') {
		res.writeHead(307, { Location: 'https://127.0.0.1:1/elsewhere' });
		res.end();
		return true;
	}
	return false;
}

async function handleControl(state, req, res) {
	if (req.method === 'POST' && req.url === '/_mock/plan') {
		const plan = JSON.parse((await readBody(req)).toString('utf8'));

		state.plans.push({ match: String(plan.match),
			steps: Array.from(plan.steps) });
		sendJson(res, 200, { ok: true });
	} else if (req.method === 'GET' && req.url === '/_mock/log') {
		sendJson(res, 200, state.log);
	} else if (req.method === 'POST' && req.url === '/_mock/reset') {
		state.plans = [];
		state.log = [];
		sendJson(res, 200, { ok: true });
	} else {
		sendJson(res, 404, { error: 'unknown control path' });
	}
}

// Starts an HTTPS mock on 127.0.0.1. options: certDir (from
// tests/support/test_ca.sh), cert ("server" or "wrong"), port (0 picks
// one), portFile (receives the port once listening), handler(req, res,
// body) for the service itself, errorFor(status, req) -> [body, headers]
// in the service's error shape.
function startMock(options) {
	const state = { plans: [], log: [] };
	const certDir = options.certDir;
	const cert = options.cert || 'server';
	const server = https.createServer({
		key: fs.readFileSync(path.join(certDir, `${cert}.key`)),
		cert: fs.readFileSync(path.join(certDir, `${cert}.pem`)),
	}, async (req, res) => {
		try {
			if (req.url.startsWith('/_mock/')) {
				await handleControl(state, req, res);
				return;
			}
			state.log.push({ method: req.method, path: req.url,
				target: req.headers['x-amz-target'] || null });
			if (applyPlan(state, req, res, options.errorFor))
				return;
			const body = await readBody(req);
			await options.handler(req, res, body);
		} catch (e) {
			if (!res.headersSent)
				sendJson(res, 400, { error: `mock: ${e.message}` });
		}
	});

	server.listen(options.port || 0, '127.0.0.1', () => {
		const port = server.address().port;

		if (options.portFile)
			fs.writeFileSync(options.portFile, `${port}\n`);
		process.stdout.write(`listening on 127.0.0.1:${port}\n`);
	});
	for (const signal of ['SIGTERM', 'SIGINT'])
		process.on(signal, () => server.close(() => process.exit(0)));
	return server;
}

module.exports = { requireNpm, readBody, sendJson, verifyJwt, startMock };
