// A webhook receiver for the cocohooks tests that checks every request's
// signature with the Standard Webhooks reference library (npm
// "standardwebhooks"), the way a real receiver would: the signature is not
// recomputed here.
//
// For every POST it reads the raw body, runs
//     new Webhook(secret).verify(rawBody, headers)
// for each --secret given (one or more) and appends one JSON line to the
// log before answering:
//     {path, webhook_id, verified, verified_by, error, event, status, headers, body, received_at}
// (verified: by any of the secrets; verified_by: one boolean per secret, in
// the order given).
// (event is the X-Hook-Event header; error the library's message or null).
// It answers 200 when the signature verified, 401 when it did not.
// A path starting with /fail-once/ answers 401 to the first request of each
// webhook-id even when it verified (to make the sender retry); that request is
// logged with status 401.
//
// Only listens on 127.0.0.1.  Usage:
//     node receiver.mjs --secret whsec_... --log FILE --port-file FILE [--port N]
import fs from 'node:fs';
import http from 'node:http';
import swh from 'standardwebhooks';

const { Webhook } = swh;

function parseArgs(argv) {
	const opts = { port: '0', secrets: [] };
	for (let i = 0; i < argv.length; i++) {
		const m = /^--(secret|log|port-file|port)$/.exec(argv[i]);
		if (!m || i + 1 >= argv.length) {
			console.error(`receiver.mjs: bad argument ${argv[i]}`);
			console.error('usage: node receiver.mjs --secret whsec_... [--secret whsec_...] --log FILE --port-file FILE [--port N]');
			process.exit(2);
		}
		if (m[1] === 'secret') {
			opts.secrets.push(argv[++i]);
			opts.secret = opts.secrets[0];
		} else {
			opts[m[1]] = argv[++i];
		}
	}
	for (const k of ['secret', 'log', 'port-file']) {
		if (!opts[k]) {
			console.error(`receiver.mjs: --${k} is required`);
			process.exit(2);
		}
	}
	return opts;
}

const opts = parseArgs(process.argv.slice(2));
// throws at start on a bad secret
const webhooks = opts.secrets.map((s) => new Webhook(s));
const failedOnce = new Set();

function answer(res, code) {
	const payload = code === 200 ? '{"ok": true}' : '{"ok": false}';
	res.writeHead(code, {
		'Content-Type': 'application/json',
		'Content-Length': Buffer.byteLength(payload),
	});
	res.end(payload);
}

const server = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const raw = Buffer.concat(chunks);
		if (req.method !== 'POST') {
			answer(res, 405);
			return;
		}
		// each secret on its own, as a receiver holding only that one would
		const verified_by = [];
		let error = null;
		for (const webhook of webhooks) {
			try {
				webhook.verify(raw, req.headers);
				verified_by.push(true);
			} catch (e) {
				verified_by.push(false);
				error = error ?? `${e.name}: ${e.message}`;
			}
		}
		const verified = verified_by.some((v) => v);
		if (verified) error = null;
		const wid = req.headers['webhook-id'] ?? null;
		let status = verified ? 200 : 401;
		if (verified && req.url.startsWith('/fail-once/') && !failedOnce.has(wid)) {
			failedOnce.add(wid);
			status = 401;
		}
		const rec = {
			path: req.url,
			webhook_id: wid,
			verified,
			verified_by,
			error,
			event: req.headers['x-hook-event'] ?? null,
			status,
			headers: req.headers,
			body: raw.toString('utf8'),
			received_at: Date.now() / 1000,
		};
		// synchronous: the record is on disk before the sender sees the answer
		fs.appendFileSync(opts.log, JSON.stringify(rec) + '\n');
		answer(res, status);
	});
});

server.listen(Number(opts.port), '127.0.0.1', () => {
	const tmp = `${opts['port-file']}.tmp${process.pid}`;
	fs.writeFileSync(tmp, `${server.address().port}\n`);
	fs.renameSync(tmp, opts['port-file']);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
	process.on(sig, () => process.exit(0));
}
