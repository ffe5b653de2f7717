// A generic HTTPS peer for the tests of keyhole's HTTP layer (http.c):
// it echoes what it received and misbehaves on request through the
// /_mock/plan control endpoint of common.js. It imitates no cloud
// service, so its error bodies are plain {"error": ...} objects.
//
//   node http_mock.js CERT_DIR PORT_FILE WRONG_PORT_FILE
//
// serves the test CA's "server" certificate on the port written to
// PORT_FILE and the "wrong" certificate (a name no test connects to) on
// the port written to WRONG_PORT_FILE.
'use strict';

const { sendJson, startMock } = require('./common.js');

const [certDir, portFile, wrongPortFile] = process.argv.slice(2);
const BODY_MAX = 1024 * 1024;

function errorFor(status) {
	const headers = status === 429 ? { 'Retry-After': '1' } : {};

	return [{ error: `status ${status}` }, headers];
}

async function handler(req, res, body) {
	const host = req.headers.host;

	if (req.url === '/ok') {
		sendJson(res, 200, { ok: true });
	} else if (req.url === '/echo') {
		sendJson(res, 200, {
			method: req.method,
			length: body.length,
			body: body.toString('utf8'),
			authorization: req.headers.authorization || null,
			amzDate: req.headers['x-amz-date'] || null,
			test: req.headers['x-test'] || null,
			expect: req.headers.expect || null,
		});
	} else if (req.url === '/redirect-self') {
		res.writeHead(302, { Location: `https://${host}/landed` });
		res.end();
	} else if (req.url === '/max') {
		res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
		res.end(Buffer.alloc(BODY_MAX, 0x62));
	} else {
		sendJson(res, 404, { error: 'no such path' });
	}
}

startMock({ certDir, cert: 'server', portFile, handler, errorFor });
startMock({ certDir, cert: 'wrong', portFile: wrongPortFile, handler,
	errorFor });
