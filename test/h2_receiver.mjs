#!/usr/bin/env node
// A webhook receiver for the HTTP/2 tests and benchmarks of cocohooks, on
// Node.js's own http2 and https modules (no packages).
//
// Over TLS it offers HTTP/2 and HTTP/1.1 by ALPN (--h1-only: HTTP/1.1
// alone); with --cleartext it speaks HTTP/2 with prior knowledge over plain
// TCP.  With --log it records every request as one JSON line before
// answering (method, path, headers, body, received_at, http_version,
// connection: a number per connection, stream: the HTTP/2 stream id,
// in_flight: requests to the path being handled, itself included), like
// test/receiver.py; records of requests it does not answer say so
// ("answered": false).  The path chooses the answer:
//
//     /status/<code>     answer with that status; ?retry_after=<s> adds a
//                        Retry-After header
//     /slow/<ms>         wait <ms> milliseconds, then answer 200
//     /body/<n>          answer 200 with a body of <n> bytes
//     /goaway/<n>        on each connection, answer its first n-1 requests
//                        to this path, then send GOAWAY (last stream: the
//                        one before) and close the connection instead of
//                        answering the n-th (HTTP/1.1: close the connection)
//     /reset/<n>         reset every n-th request to this path (RST_STREAM
//                        INTERNAL_ERROR; HTTP/1.1: close the connection)
//     /early             answer 200 before reading the body, then reset
//                        the stream with NO_ERROR (the body not recorded)
//     /early-cut         the same, but 10 of the 100 bytes announced
//     anything else      answer 200 after --delay-ms (default 0)
//
// Listens on 127.0.0.1 only.  The port goes to --port-file once listening.
// With --max-streams it announces that SETTINGS_MAX_CONCURRENT_STREAMS.
// SIGTERM writes "requests answered" to --count-file, if given, and exits.
import fs from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';

const args = { port: 0, delayMs: 0, maxStreams: 0 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const next = () => process.argv[++i];
  if (a === '--log') args.log = next();
  else if (a === '--port') args.port = Number(next());
  else if (a === '--port-file') args.portFile = next();
  else if (a === '--tls-cert') args.cert = next();
  else if (a === '--tls-key') args.key = next();
  else if (a === '--h1-only') args.h1Only = true;
  else if (a === '--cleartext') args.cleartext = true;
  else if (a === '--delay-ms') args.delayMs = Number(next());
  else if (a === '--max-streams') args.maxStreams = Number(next());
  else if (a === '--count-file') args.countFile = next();
  else {
    process.stderr.write(`h2_receiver: unknown argument ${a}\n`);
    process.exit(2);
  }
}

let answered = 0;
let nextConnection = 1;
const connectionIds = new WeakMap();
const perConnection = new WeakMap();  // connection -> { path: count }
const perPath = new Map();            // path -> requests so far
const inFlight = new Map();           // path -> requests being handled

function connectionId(conn) {
  if (!connectionIds.has(conn)) connectionIds.set(conn, nextConnection++);
  return connectionIds.get(conn);
}

function record(req, conn, body, fields) {
  if (!args.log) return;
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (!k.startsWith(':')) headers[k.toLowerCase()] = v;
  }
  const rec = {
    method: req.method,
    path: req.url,
    headers,
    body,
    received_at: Date.now() / 1000,
    http_version: req.httpVersion,
    connection: connectionId(conn),
    stream: req.stream ? req.stream.id : null,
    ...fields,
  };
  fs.appendFileSync(args.log, JSON.stringify(rec) + '\n');
}

// The stream or connection may be gone by now (a GOAWAY, the client's
// timeout): then there is nobody to answer.
function answer(res, code, headers = {}, payload = null) {
  const body = payload ?? (code >= 200 && code < 300 ? '{"ok": true}' : '{"ok": false}');
  const noBody = code === 204 || code === 304 || code < 200;
  if (res.stream?.destroyed || res.socket?.destroyed) return;
  try {
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(noBody ? undefined : body);
    answered++;
  } catch {
    // gone between the check and the answer
  }
}

// Ends a request without an answer: RST_STREAM over HTTP/2, a closed
// connection over HTTP/1.1.
function reset(req) {
  if (req.stream?.destroyed) return;
  if (req.stream) req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  else req.socket.destroy();
}

// Sends GOAWAY naming the stream before req's as the last one processed,
// then closes the connection (HTTP/1.1: closes it).
function goAway(req, session) {
  if (!req.stream) {
    req.socket.destroy();
    return;
  }
  if (session.destroyed) return;
  session.goaway(http2.constants.NGHTTP2_NO_ERROR, Math.max(req.stream.id - 2, 0));
  setTimeout(() => session.destroy(), 50);
}

function handle(req, res, conn, body) {
  const [pathOnly, query = ''] = req.url.split('?');
  const q = Object.fromEntries(query.split('&').filter((p) => p.includes('=')).map((p) => p.split('=')));
  const parts = pathOnly.split('/').filter(Boolean);
  const flight = (inFlight.get(pathOnly) ?? 0) + 1;
  inFlight.set(pathOnly, flight);
  const leave = () => inFlight.set(pathOnly, inFlight.get(pathOnly) - 1);
  const nth = (perPath.get(pathOnly) ?? 0) + 1;
  perPath.set(pathOnly, nth);

  if (parts[0] === 'goaway' && parts[1]) {
    const counts = perConnection.get(conn) ?? {};
    counts[pathOnly] = (counts[pathOnly] ?? 0) + 1;
    perConnection.set(conn, counts);
    if (counts[pathOnly] >= Number(parts[1])) {
      record(req, conn, body, { in_flight: flight, answered: false, goaway: true });
      leave();
      goAway(req, conn);
      return;
    }
  }
  if (parts[0] === 'reset' && parts[1] && nth % Number(parts[1]) === 0) {
    record(req, conn, body, { in_flight: flight, answered: false, reset: true });
    leave();
    reset(req);
    return;
  }
  record(req, conn, body, { in_flight: flight });
  let delay = args.delayMs;
  if (parts[0] === 'slow' && parts[1]) delay = Number(parts[1]);
  const respond = () => {
    leave();
    if (parts[0] === 'status' && parts[1]) {
      answer(res, Number(parts[1]), q.retry_after ? { 'retry-after': q.retry_after } : {});
    } else if (parts[0] === 'body' && parts[1]) {
      const n = Number(parts[1]);
      answer(res, 200, {}, '0123456789'.repeat(Math.ceil(n / 10) + 1).slice(0, n));
    } else {
      answer(res, 200);
    }
  };
  if (delay > 0) setTimeout(respond, delay);
  else respond();
}

// /early and /early-cut answer as soon as the request's headers are in,
// without reading its body, then reset the stream with NO_ERROR (RFC 9113
// §8.1 allows it); /early-cut announces 100 bytes and sends 10.
function answerEarly(req, res, conn) {
  const cut = req.url.startsWith('/early-cut');
  record(req, conn, null, { early: true, cut });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': cut ? 100 : 12 });
  res.write(cut ? '{"ok": true' : '{"ok": true}');
  if (!req.stream) {
    if (cut) req.socket.destroy();
    else res.end();
    return;
  }
  if (!cut) res.end();
  setImmediate(() => {
    if (!req.stream.destroyed) req.stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}

function onRequest(req, res) {
  const conn = req.stream ? req.stream.session : req.socket;
  if (req.url.startsWith('/early')) {
    answerEarly(req, res, conn);
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => handle(req, res, conn, Buffer.concat(chunks).toString('utf8')));
  req.on('error', () => {});
  res.on('error', () => {});
}

const settings = args.maxStreams > 0 ? { maxConcurrentStreams: args.maxStreams } : {};
let server;
if (args.cleartext) {
  server = http2.createServer({ settings }, onRequest);
} else {
  const tls = {
    cert: fs.readFileSync(args.cert),
    key: fs.readFileSync(args.key),
    minVersion: 'TLSv1.2',
  };
  server = args.h1Only
    ? https.createServer({ ...tls, keepAliveTimeout: 60000 }, onRequest)
    : http2.createSecureServer({ ...tls, allowHTTP1: true, settings }, onRequest);
}
server.on('sessionError', () => {});
server.on('clientError', (err, socket) => socket.destroy());
server.listen(args.port, '127.0.0.1', () => {
  if (args.portFile) fs.writeFileSync(args.portFile, String(server.address().port));
});

process.on('SIGTERM', () => {
  if (args.countFile) fs.writeFileSync(args.countFile, `${answered}\n`);
  process.exit(0);
});
