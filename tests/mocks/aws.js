// Loopback mock of the AWS services the aws backend calls, checking what
// the real services check:
//
//   STS (HTTPS, form POST /)  AssumeRoleWithWebIdentity verifies the JWT
//       with jose against the exported jwks.json (iss, aud, exp, alg
//       RS256/ES256) and the role's subject. AssumeRole verifies the
//       SigV4 signature by recomputing it with the npm package aws4, and
//       it checks the role's ExternalId. Both check DurationSeconds
//       (900..43200), RoleSessionName ([\w+=,.@-]{2,64}) and the session
//       policy, and answer in STS's XML shapes.
//   Secrets Manager (HTTPS, X-Amz-Target secretsmanager.GetSecretValue)
//       verifies SigV4 with an issued temporary key and its session
//       token, enforces the session policy's Resource, and answers
//       ResourceNotFoundException, AccessDeniedException and
//       ThrottlingException in the JSON protocol's error shape.
//   IMDSv2 (plain HTTP, as on EC2) requires a session token from
//       PUT /latest/api/token for the credential GETs.
//
// Usage: node aws.js CONFIG.json CERT_DIR PORT_FILE [CERT]. The IMDS
// port goes to PORT_FILE.imds. The config names region, issuer,
// audience, jwks (path), roles
// {arn: {web_identity, subject, external_id}}, ambient {access_key_id,
// secret_access_key}, imds {role, access_key_id, secret_access_key,
// token} and secrets {arn: {string | binary, throttle}}.
//
// Test endpoints (HTTPS): GET /_aws/calls lists every STS and Secrets
// Manager call with what it carried and how it ended; POST
// /_aws/throttle {"arn", "count"} makes the next count reads of arn
// throttled.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const common = require('./common.js');

const aws4 = common.requireNpm('aws4');
const [configPath, certDir, portFile, cert] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const region = config.region || 'us-east-1';
const calls = [];
const issued = new Map();      // temporary access key id -> credentials
const imdsTokens = new Map();  // IMDSv2 token -> expiry (ms)

class AwsError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

function randomText(alphabet, length) {
	const bytes = crypto.randomBytes(length);
	let out = '';

	for (const b of bytes)
		out += alphabet[b % alphabet.length];
	return out;
}

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

// ---- error shapes ----

function stsErrorXml(code, message) {
	const type = code.startsWith('Internal') ? 'Receiver' : 'Sender';

	return '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">' +
		`<Error><Type>${type}</Type><Code>${code}</Code>` +
		`<Message>${escapeXml(message)}</Message></Error>` +
		`<RequestId>${crypto.randomUUID()}</RequestId></ErrorResponse>\n`;
}

function sendXml(res, status, text) {
	const body = Buffer.from(text);

	res.writeHead(status, { 'Content-Type': 'text/xml',
		'Content-Length': body.length });
	res.end(body);
}

function sendAwsJsonError(res, status, code, message) {
	common.sendJson(res, status, { __type: code, message },
		{ 'Content-Type': 'application/x-amz-json-1.1',
			'x-amzn-ErrorType': code });
}

function escapeXml(text) {
	return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;')
		.replace(/>/g, '&gt;');
}

// Scripted failures (/_mock/plan) in each service's own error shape.
// common.js sends them as JSON, which is Secrets Manager's shape; STS
// clients then see a body without an XML <Code> and fall back on the
// status.
const planErrors = {
	400: ['ThrottlingException', 'Rate exceeded'],
	403: ['AccessDeniedException', 'Access denied by the mock plan'],
	404: ['ResourceNotFoundException', 'Secrets Manager can\'t find the specified secret.'],
	429: ['ThrottlingException', 'Rate exceeded'],
	500: ['InternalServiceError', 'Internal error from the mock plan'],
};

function errorFor(status) {
	const [code, message] = planErrors[status] ||
		['InternalServiceError', `status ${status} from the mock plan`];

	return [{ __type: code, message },
		{ 'Content-Type': 'application/x-amz-json-1.1',
			'x-amzn-ErrorType': code }];
}

// ---- SigV4 verification with aws4 ----

const AUTH_RE = new RegExp('^AWS4-HMAC-SHA256 Credential=([A-Z0-9]{16,128})/' +
	'(\\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request, ?' +
	'SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$');

// Recomputes the request's signature with aws4 over the headers it
// names as signed, the method, path and body, and compares. lookup
// maps an access key id to {secret, token} or undefined. Throws
// AwsError in the service's words; fail(code, message) builds it.
function verifySigV4(req, body, service, lookup, fail) {
	const m = AUTH_RE.exec(req.headers.authorization || '');

	if (!m)
		throw fail('IncompleteSignature', 'Authorization header is missing or malformed');
	const [, keyId, date, scopeRegion, scopeService, signed, signature] = m;
	if (scopeRegion !== region || scopeService !== service)
		throw fail('SignatureDoesNotMatch',
			`Credential should be scoped to ${region}/${service}, not ${scopeRegion}/${scopeService}`);
	const key = lookup(keyId);
	if (!key)
		throw fail('InvalidClientTokenId', 'The security token included in the request is invalid.');

	const amzDate = req.headers['x-amz-date'] || '';
	const when = Date.parse(amzDate.replace(
		/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
	if (!amzDate.startsWith(date) || Number.isNaN(when) ||
	    Math.abs(Date.now() - when) > 15 * 60 * 1000)
		throw fail('SignatureDoesNotMatch', 'Signature expired or X-Amz-Date is invalid');

	const names = signed.split(';');
	if (!names.includes('host') || !names.includes('x-amz-date'))
		throw fail('SignatureDoesNotMatch', 'host and x-amz-date must be signed');
	if (key.token && (req.headers['x-amz-security-token'] !== key.token ||
	    !names.includes('x-amz-security-token')))
		throw fail('InvalidClientTokenId', 'The security token included in the request is invalid.');

	const headers = {};
	const include = {};
	for (const name of names) {
		if (req.headers[name] === undefined)
			throw fail('SignatureDoesNotMatch', `signed header ${name} is missing`);
		headers[name] = req.headers[name];
		include[name] = true;
	}
	const signer = new aws4.RequestSigner({
		method: req.method, path: req.url, host: req.headers.host,
		service, region, body, headers, doNotModifyHeaders: true,
		extraHeadersToInclude: include,
	}, { accessKeyId: keyId, secretAccessKey: key.secret });
	signer.datetime = amzDate;
	const expected = Buffer.from(signer.signature());
	if (!crypto.timingSafeEqual(expected, Buffer.from(signature)))
		throw fail('SignatureDoesNotMatch',
			'The request signature we calculated does not match the signature you provided.');
	return keyId;
}

// ---- STS ----

function stsFail(code, message) {
	const status = code === 'AccessDenied' || code === 'InvalidClientTokenId' ||
		code === 'SignatureDoesNotMatch' || code === 'IncompleteSignature' ? 403 : 400;

	return new AwsError(status, code, message);
}

function checkCommonParams(form) {
	if (form.get('Version') !== '2011-06-15')
		throw stsFail('InvalidParameterValue', 'Version must be 2011-06-15');
	const role = config.roles[form.get('RoleArn') || ''];
	if (!role)
		throw stsFail('AccessDenied', `Not authorized to assume ${form.get('RoleArn')}`);
	const name = form.get('RoleSessionName') || '';
	if (!/^[\w+=,.@-]{2,64}$/.test(name))
		throw stsFail('ValidationError',
			`1 validation error detected: Value '${name}' at 'roleSessionName' failed to satisfy constraint`);
	const duration = Number(form.get('DurationSeconds') || '3600');
	if (!Number.isInteger(duration) || duration < 900 || duration > 43200)
		throw stsFail('ValidationError', 'DurationSeconds must be 900 to 43200');
	const policyText = form.get('Policy');
	let policy = null;
	if (policyText !== null) {
		if (policyText.length > 2048)
			throw stsFail('PackedPolicyTooLarge', 'Policy is larger than 2048 characters');
		try {
			policy = JSON.parse(policyText);
		} catch (e) {
			throw stsFail('MalformedPolicyDocument', 'Policy is not valid JSON');
		}
	}
	return { role, name, duration, policy };
}

async function checkWebIdentity(form, role, record) {
	if (!role.web_identity)
		throw stsFail('AccessDenied', 'Role does not trust the web identity provider');
	let verified;
	try {
		verified = await common.verifyJwt(form.get('WebIdentityToken') || '', {
			jwksPath: config.jwks, issuer: config.issuer,
			audience: config.audience || 'sts.amazonaws.com',
			algorithms: ['RS256', 'ES256'],
		});
	} catch (e) {
		if (e.code === 'ERR_JWT_EXPIRED')
			throw stsFail('ExpiredTokenException', 'Token expired');
		throw stsFail('InvalidIdentityToken', `Token rejected: ${e.code || e.message}`);
	}
	const { payload, header } = verified;
	if (typeof payload.permit_jti !== 'string' || payload.permit_jti === '')
		throw stsFail('InvalidIdentityToken', 'Token has no permit_jti claim');
	if (payload.exp - payload.iat > 300)
		throw stsFail('InvalidIdentityToken', 'Token lives longer than 300 s');
	if (role.subject && payload.sub !== role.subject)
		throw stsFail('AccessDenied', `Not authorized for sub ${payload.sub}`);
	Object.assign(record, { kid: header.kid, alg: header.alg,
		iss: payload.iss, sub: payload.sub, aud: payload.aud,
		permit_jti: payload.permit_jti });
}

function ambientKeys(keyId) {
	const ambient = config.ambient;
	const imds = config.imds;

	if (ambient && keyId === ambient.access_key_id)
		return { secret: ambient.secret_access_key, token: ambient.session_token };
	if (imds && keyId === imds.access_key_id)
		return { secret: imds.secret_access_key, token: imds.token };
	return undefined;
}

function issueCredentials(form, role, policy, duration) {
	const keyId = 'ASIA' + randomText(UPPER, 16);
	const creds = {
		keyId,
		secret: randomText(B64, 40),
		token: randomText(B64, 256),
		expiration: new Date(Date.now() + duration * 1000),
		roleArn: form.get('RoleArn'),
		policy,
	};

	issued.set(keyId, creds);
	return creds;
}

function credentialsXml(action, creds) {
	return `<${action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n` +
		`  <${action}Result>\n` +
		'    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/mock</Arn>' +
		'<AssumedRoleId>AROAMOCK:mock</AssumedRoleId></AssumedRoleUser>\n' +
		'    <Credentials>\n' +
		`      <AccessKeyId>${creds.keyId}</AccessKeyId>\n` +
		`      <SecretAccessKey>${creds.secret}</SecretAccessKey>\n` +
		`      <SessionToken>${creds.token}</SessionToken>\n` +
		`      <Expiration>${creds.expiration.toISOString()}</Expiration>\n` +
		'    </Credentials>\n' +
		`  </${action}Result>\n` +
		`  <ResponseMetadata><RequestId>${crypto.randomUUID()}</RequestId></ResponseMetadata>\n` +
		`</${action}Response>\n`;
}

async function handleSts(req, res, body) {
	const form = new URLSearchParams(body.toString('utf8'));
	const action = form.get('Action') || '';
	const record = { service: 'sts', action,
		role_session_name: form.get('RoleSessionName'),
		role_arn: form.get('RoleArn'),
		external_id: form.get('ExternalId'),
		duration_seconds: form.get('DurationSeconds'),
		policy: form.get('Policy'),
		signed: Boolean(req.headers.authorization) };

	calls.push(record);
	try {
		if (!String(req.headers['content-type'] || '').startsWith(
			'application/x-www-form-urlencoded'))
			throw stsFail('InvalidParameterValue', 'expected a form body');
		const { role, duration, policy } = checkCommonParams(form);

		if (action === 'AssumeRoleWithWebIdentity') {
			await checkWebIdentity(form, role, record);
		} else if (action === 'AssumeRole') {
			verifySigV4(req, body, 'sts', ambientKeys, stsFail);
			if (!role.external_id || form.get('ExternalId') !== role.external_id)
				throw stsFail('AccessDenied',
					`Not authorized to perform sts:AssumeRole on ${form.get('RoleArn')}`);
		} else {
			throw stsFail('InvalidAction', `Could not find operation ${action}`);
		}
		const creds = issueCredentials(form, role, policy, duration);
		record.result = 'ok';
		record.access_key_id = creds.keyId;
		sendXml(res, 200, credentialsXml(action, creds));
	} catch (e) {
		if (!(e instanceof AwsError))
			throw e;
		record.result = e.code;
		sendXml(res, e.status, stsErrorXml(e.code, e.message));
	}
}

// ---- Secrets Manager ----

function smFail(code, message) {
	return new AwsError(400, code, message);
}

function temporaryKey(keyId) {
	const creds = issued.get(keyId);

	if (!creds)
		return undefined;
	if (creds.expiration.getTime() < Date.now())
		throw smFail('ExpiredTokenException', 'The security token included in the request is expired');
	return { secret: creds.secret, token: creds.token, creds };
}

// Allows the call when some Allow statement of the session policy
// names the action and the resource (exactly, or "*").
function policyAllows(policy, action, resource) {
	if (!policy)
		return true;
	const statements = [].concat(policy.Statement || []);

	return statements.some((s) => s.Effect === 'Allow' &&
		[].concat(s.Action || []).some((a) => a === action || a === 'secretsmanager:*') &&
		[].concat(s.Resource || []).some((r) => r === resource || r === '*'));
}

function secretReply(arn, secret) {
	const reply = {
		ARN: arn,
		Name: arn.split(':secret:')[1],
		VersionId: 'b7c6e1f0-0000-4000-8000-000000000001',
		VersionStages: ['AWSCURRENT'],
		CreatedDate: 1700000000.123,
	};

	if (secret.binary !== undefined)
		reply.SecretBinary = secret.binary;
	else
		reply.SecretString = secret.string;
	return reply;
}

async function handleSecretsManager(req, res, body) {
	const record = { service: 'secretsmanager',
		target: req.headers['x-amz-target'] };

	calls.push(record);
	try {
		if (req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue')
			throw smFail('UnknownOperationException', 'unknown X-Amz-Target');
		if (req.headers['content-type'] !== 'application/x-amz-json-1.1')
			throw smFail('SerializationException', 'Content-Type must be application/x-amz-json-1.1');
		const keyId = verifySigV4(req, body, 'secretsmanager', temporaryKey,
			(code, message) => smFail(code === 'InvalidClientTokenId'
				? 'UnrecognizedClientException'
				: code === 'SignatureDoesNotMatch'
					? 'InvalidSignatureException' : code, message));
		const creds = issued.get(keyId);
		let request;
		try {
			request = JSON.parse(body.toString('utf8'));
		} catch (e) {
			throw smFail('SerializationException', 'body is not JSON');
		}
		const arn = request.SecretId;
		record.secret_id = arn;
		if (!policyAllows(creds.policy, 'secretsmanager:GetSecretValue', arn))
			throw smFail('AccessDeniedException',
				`User: assumed-role is not authorized to perform: secretsmanager:GetSecretValue on resource: ${arn} because no session policy allows it`);
		const secret = config.secrets[arn];
		if (!secret)
			throw smFail('ResourceNotFoundException', 'Secrets Manager can\'t find the specified secret.');
		if (secret.throttle > 0) {
			secret.throttle--;
			throw smFail('ThrottlingException', 'Rate exceeded');
		}
		record.result = 'ok';
		common.sendJson(res, 200, secretReply(arn, secret),
			{ 'Content-Type': 'application/x-amz-json-1.1' });
	} catch (e) {
		if (!(e instanceof AwsError))
			throw e;
		record.result = e.code;
		sendAwsJsonError(res, e.status, e.code, e.message);
	}
}

// ---- test endpoints and dispatch ----

async function handleTestEndpoint(req, res, body) {
	if (req.method === 'GET' && req.url === '/_aws/calls') {
		common.sendJson(res, 200, calls);
	} else if (req.method === 'POST' && req.url === '/_aws/throttle') {
		const { arn, count } = JSON.parse(body.toString('utf8'));

		if (!config.secrets[arn])
			throw new Error(`unknown secret ${arn}`);
		config.secrets[arn].throttle = Number(count);
		common.sendJson(res, 200, { ok: true });
	} else {
		common.sendJson(res, 404, { error: 'unknown test path' });
	}
}

async function handler(req, res, body) {
	if (req.url.startsWith('/_aws/'))
		return handleTestEndpoint(req, res, body);
	if (req.method !== 'POST' || req.url !== '/') {
		sendXml(res, 404, stsErrorXml('InvalidAction', `no operation at ${req.method} ${req.url}`));
		return undefined;
	}
	if (req.headers['x-amz-target'])
		return handleSecretsManager(req, res, body);
	return handleSts(req, res, body);
}

// ---- IMDSv2 (plain HTTP, like the link-local service on EC2) ----

function imdsText(res, status, text) {
	res.writeHead(status, { 'Content-Type': 'text/plain',
		'Content-Length': Buffer.byteLength(text) });
	res.end(text);
}

function imdsTokenValid(req) {
	const token = req.headers['x-aws-ec2-metadata-token'];
	const expiry = token ? imdsTokens.get(token) : undefined;

	return expiry !== undefined && expiry > Date.now();
}

async function handleImds(req, res) {
	const imds = config.imds || {};
	const base = '/latest/meta-data/iam/security-credentials/';

	await common.readBody(req);
	calls.push({ service: 'imds', method: req.method, path: req.url });
	if (req.method === 'PUT' && req.url === '/latest/api/token') {
		const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);

		// IMDSv2 rejects token requests that came through a proxy.
		if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600 ||
		    req.headers['x-forwarded-for'])
			return imdsText(res, 400, 'Bad Request');
		const token = randomText(B64, 56);
		imdsTokens.set(token, Date.now() + ttl * 1000);
		return imdsText(res, 200, token);
	}
	if (req.method !== 'GET')
		return imdsText(res, 405, 'Method Not Allowed');
	if (!imdsTokenValid(req))
		return imdsText(res, 401, 'Unauthorized');
	if (req.url === base)
		return imdsText(res, imds.role ? 200 : 404, imds.role ? `${imds.role}\n` : 'Not Found');
	if (imds.role && req.url === base + imds.role) {
		return common.sendJson(res, 200, {
			Code: 'Success',
			LastUpdated: new Date().toISOString(),
			Type: 'AWS-HMAC',
			AccessKeyId: imds.access_key_id,
			SecretAccessKey: imds.secret_access_key,
			Token: imds.token,
			Expiration: new Date(Date.now() + 3600 * 1000).toISOString(),
		});
	}
	return imdsText(res, 404, 'Not Found');
}

function startImds() {
	const server = http.createServer((req, res) => {
		handleImds(req, res).catch(() => {
			if (!res.headersSent)
				imdsText(res, 500, 'Internal Server Error');
		});
	});

	server.listen(0, '127.0.0.1', () => {
		fs.writeFileSync(`${portFile}.imds`, `${server.address().port}\n`);
		// The HTTPS port file is the test's signal that both listen.
		common.startMock({ certDir, cert, portFile, handler, errorFor });
	});
	return server;
}

startImds();
