#!/usr/bin/env node
// A scripted HTTP/1.1 webhook receiver for test/t/395_http1_wire.pl, on
// raw TCP (node:net, no packages): it parses requests itself and writes
// exactly the bytes each case calls for, so the test can pin down how a
// webhook sender speaks HTTP/1.1 on the wire, whatever does the framing.
//
// Requests are parsed as they arrive: the request line, header lines ended
// by CRLF (up to 64 kB of them), a body by Content-Length (or chunked, so
// that a sender that used it is still recorded), one after the other on a
// kept-alive connection, pipelined ones too.  With --log every request is
// recorded as one JSON line before it is answered (after its body, for
// /early): method, path (the request target, query included), version,
// header_lines (the raw lines, in order), headers (names lowercased; a
// repeated name's values joined with ", "), header_counts (how often each
// name came), body (UTF-8), body_b64 (the exact bytes), body_length,
// connection (a number per TCP connection), request (its number on that
// connection), received_at (seconds since the epoch), pipelined (bytes of
// it came before the previous request on the connection was answered),
// bare_lf (a line ended by LF alone), chunked (its body came chunked);
// requests it does not answer say so ("answered": false, and why).
//
// The path (the query left out) chooses the answer:
//
//   /ok                200, Content-Length: 2, "ok", kept alive (also any
//                      path not listed here)
//   /chunked/<n>       200, Transfer-Encoding: chunked: n bytes of
//                      "0123456789..." in several chunks of odd sizes (hex
//                      sizes in upper case, with leading zeros), one with a
//                      chunk extension (;x=y), then a trailer field; in
//                      pieces a few milliseconds apart
//   /close             200 with Connection: close, then closes
//   /close-late        200 with Connection: close, then closes only after
//                      500 ms
//
// A request that comes on a connection after an answer that ended it
// (Connection: close, HTTP/1.0, a close-delimited body) is recorded
// ("after_close": true) and not answered; one that comes after this side
// closed it unannounced (/drop, /idle-close) is recorded as "dropped".
//   /close-delimited/<n>  HTTP/1.1 200 with Connection: close and no
//                      Content-Length: n bytes of body, then closes
//   /http10            HTTP/1.0 200 without Content-Length: the body
//                      ("http10-body") until the connection closes
//   /interim           two 103 Early Hints (with Link headers), then 200
//                      with the body "final"
//   /continue          100 Continue (unasked for), then 200 "final"
//   /split             the whole answer (200, "split-reply") written one to
//                      three bytes at a time, a few milliseconds apart
//   /idle-close/<ms>   200 kept alive; the connection is closed after <ms>
//                      ms without a new request (a keep-alive timeout)
//   /drop              200 with Content-Length and no Connection: close,
//                      then the connection is closed at once
//   /drop-next         200 kept alive; the next request on that connection
//                      is read whole, then the connection is closed without
//                      an answer ("answered": false, "dropped": true): a
//                      kept-alive connection that died as it was reused
//   /reset-next        the same, but the connection is reset (RST), not
//                      closed
//   /many-headers      200 with 40 header lines of about 1 kB each
//   /mixed-case        200 whose header names are in odd case, a value
//                      with spaces around it, an empty value
//   /noreason          200 with an empty reason phrase ("HTTP/1.1 200 ")
//   /excess            200 with Content-Length: 2 followed, in the same
//                      write, by bytes of an answer to no request (a 500)
//   /garbage           "XYZ nonsense\r\n\r\n": not HTTP; then closes
//   /short             Content-Length: 100 but 10 bytes, then closes
//   /body/<n>          200 with a body of n bytes of "0123456789..."
//                      (?status=<code> answers with that status)
//   /204               204 No Content without Content-Length, kept alive
//   /redirect          302 with a Location header
//   /status/<code>     that status with a short JSON body;
//                      ?retry_after=<s> adds Retry-After: <s>,
//                      ?retry_date=<s> adds Retry-After as the HTTP-date
//                      <s> seconds from now (rounded up to a second)
//   /late/<ms>         200 after <ms> ms (if the connection is still open)
//   /early             200 right after the request's headers, before its
//                      body is read; the body is then read and recorded
//                      ("early": true, "body_complete_at_answer")
//
// With ?once in the query, the case above applies only to the first
// request of each webhook-id; later ones (its retries) get /ok.
//
// Listens on 127.0.0.1 only, on --port (default 0: a free one), and writes
// the port to --port-file once listening.
//
// With --tls-cert F --tls-key F (PEM files) it speaks TLS, offering only
// HTTP/1.1 by ALPN, and all of the above runs on the TLS connection: an
// answer's bytes are written in TLS records, a close is a TLS close
// (close_notify, then the TCP close), a reset resets the TCP connection
// under it.  Each request's record then has "tls": its protocol version,
// the ALPN protocol agreed ("alpn", false if the client offered none) and
// whether the session was resumed ("session_reused").  A connection whose
// handshake failed is recorded as one line without a path: "tls_error"
// (OpenSSL's error code, ERR_SSL_TLSV1_ALERT_UNKNOWN_CA when the client
// refused the certificate, ERR_SSL_HTTP_REQUEST when it spoke plain HTTP),
// "tls_message", connection, received_at.
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const args = { port: 0 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const next = () => process.argv[++i];
  if (a === '--log') args.log = next();
  else if (a === '--port') args.port = Number(next());
  else if (a === '--port-file') args.portFile = next();
  else if (a === '--tls-cert') args.cert = next();
  else if (a === '--tls-key') args.key = next();
  else {
    process.stderr.write(`raw_receiver: unknown argument ${a}\n`);
    process.exit(2);
  }
}

if (!args.cert !== !args.key) {
  process.stderr.write('raw_receiver: --tls-cert and --tls-key go together\n');
  process.exit(2);
}
const secureContext = args.cert
  ? tls.createSecureContext({ cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) })
  : null;

const MAX_HEAD = 64 * 1024;
const seenIds = new Set();  // webhook-ids seen by a ?once case
let nextConnection = 1;

const pattern = (n) => Buffer.from('0123456789'.repeat(Math.ceil(n / 10) + 1).slice(0, n));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function record(conn, req, fields = {}) {
  if (!args.log) return;
  const rec = {
    method: req.method,
    path: req.target,
    version: req.version,
    header_lines: req.lines,
    headers: req.headers,
    header_counts: req.counts,
    body: req.body.toString('utf8'),
    body_b64: req.body.toString('base64'),
    body_length: req.body.length,
    connection: conn.id,
    request: req.number,
    received_at: req.receivedAt,
    pipelined: req.pipelined,
    bare_lf: req.bareLf,
    chunked: req.chunked,
    ...(conn.tls ? { tls: conn.tls } : {}),
    ...fields,
  };
  fs.appendFileSync(args.log, JSON.stringify(rec) + '\n');
}

// Writes to the connection unless it is gone (the client's timeout).
function send(conn, data) {
  if (conn.sock.destroyed || conn.sock.writableEnded) return false;
  conn.sock.write(data);
  return true;
}

function endConn(conn) {
  conn.closing = true;
  if (!conn.sock.destroyed) conn.sock.end();
}

function head(status, reason, headers, version = 'HTTP/1.1') {
  return `${version} ${status}${reason === null ? '' : ' ' + reason}\r\n` +
    headers.map((h) => h + '\r\n').join('') + '\r\n';
}

const reasons = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 302: 'Found',
  400: 'Bad Request', 404: 'Not Found', 410: 'Gone', 422: 'Unprocessable Content',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

function simple(status, body, extra = []) {
  const b = Buffer.from(body);
  return Buffer.concat([
    Buffer.from(head(status, reasons[status] ?? 'Whatever',
      ['Content-Type: text/plain', `Content-Length: ${b.length}`, ...extra])),
    b,
  ]);
}

// Answers a request whose body has been read.  Returns 'keep' to go on
// reading the connection's next request, or 'closed'.
async function respond(conn, req) {
  const [pathOnly, query = ''] = req.target.split('?');
  const q = Object.fromEntries(query.split('&').filter(Boolean).map((p) => {
    const [k, v = ''] = p.split('=');
    return [k, v];
  }));
  let parts = pathOnly.split('/').filter(Boolean);
  if ('once' in q) {
    const id = req.headers['webhook-id'] ?? '';
    if (seenIds.has(id)) parts = ['ok'];
    seenIds.add(id);
  }
  const what = parts[0] ?? 'ok';
  const n = Number(parts[1] ?? 0);

  switch (what) {
    case 'chunked': {
      const body = pattern(n);
      send(conn, head(200, 'OK', ['Content-Type: text/plain', 'Transfer-Encoding: chunked',
        'Trailer: X-Checksum']));
      const sizes = [1, 10, 300];
      const pieces = [];
      let at = 0;
      for (const s of sizes) {
        if (at >= body.length) break;
        pieces.push(body.subarray(at, Math.min(at + s, body.length)));
        at += s;
      }
      while (at < body.length) {
        pieces.push(body.subarray(at, Math.min(at + 4000, body.length)));
        at += 4000;
      }
      for (let i = 0; i < pieces.length; i++) {
        const size = '0' + pieces[i].length.toString(16).toUpperCase();
        const ext = i === 1 ? ';x=y' : '';
        send(conn, Buffer.concat([Buffer.from(`${size}${ext}\r\n`), pieces[i], Buffer.from('\r\n')]));
        await sleep(2);
      }
      send(conn, '0\r\nX-Checksum: 1234\r\n\r\n');
      return 'keep';
    }
    case 'close':
      send(conn, simple(200, 'ok', ['Connection: close']));
      conn.saidClose = true;
      endConn(conn);
      return 'closed';
    case 'close-late':
      send(conn, simple(200, 'ok', ['Connection: close']));
      conn.saidClose = true;
      setTimeout(() => endConn(conn), 500);
      return 'keep';
    case 'close-delimited':
      send(conn, head(200, 'OK', ['Content-Type: text/plain', 'Connection: close']));
      send(conn, pattern(n));
      conn.saidClose = true;
      endConn(conn);
      return 'closed';
    case 'http10':
      send(conn, head(200, 'OK', ['Content-Type: text/plain'], 'HTTP/1.0') + 'http10-body');
      conn.saidClose = true;
      endConn(conn);
      return 'closed';
    case 'interim':
      send(conn, head(103, 'Early Hints', ['Link: </style.css>; rel=preload; as=style']));
      await sleep(20);
      send(conn, head(103, 'Early Hints', ['Link: </script.js>; rel=preload; as=script']));
      await sleep(20);
      send(conn, simple(200, 'final'));
      return 'keep';
    case 'continue':
      send(conn, head(100, 'Continue', []));
      await sleep(20);
      send(conn, simple(200, 'final'));
      return 'keep';
    case 'split': {
      const all = simple(200, 'split-reply', ['X-Split: yes']);
      for (let i = 0; i < all.length;) {
        const k = 1 + (i % 3);
        if (!send(conn, all.subarray(i, i + k))) break;
        i += k;
        await sleep(2 + (i % 4));
      }
      return 'keep';
    }
    case 'idle-close':
      send(conn, simple(200, 'ok'));
      conn.idleMs = n;
      return 'keep';
    case 'drop':
      send(conn, simple(200, 'ok'));
      endConn(conn);
      return 'closed';
    case 'drop-next':
      send(conn, simple(200, 'ok'));
      conn.dropNext = true;
      return 'keep';
    case 'reset-next':
      send(conn, simple(200, 'ok'));
      conn.dropNext = 'reset';
      return 'keep';
    case 'many-headers': {
      const extra = [];
      for (let i = 0; i < 40; i++) extra.push(`X-Filler-${String(i).padStart(2, '0')}: ${'abcdefghij'.repeat(98)}`);
      send(conn, simple(200, 'many', extra));
      return 'keep';
    }
    case 'mixed-case':
      send(conn, 'HTTP/1.1 200 OK\r\ncontent-TYPE: text/plain\r\nCONTENT-LENGTH:   6  \r\n' +
        'connection:   Keep-Alive\r\nX-Empty:\r\nx-tabbed:\tvalue\t\r\n\r\nmixed!');
      return 'keep';
    case 'noreason':
      send(conn, Buffer.concat([Buffer.from(head(200, '', ['Content-Length: 8'])), Buffer.from('noreason')]));
      return 'keep';
    case 'excess':
      send(conn, Buffer.concat([simple(200, 'ok'),
        Buffer.from('HTTP/1.1 500 Bogus\r\nContent-Length: 5\r\n\r\nbogus')]));
      return 'keep';
    case 'garbage':
      send(conn, 'XYZ nonsense\r\n\r\n');
      endConn(conn);
      return 'closed';
    case 'short':
      send(conn, head(200, 'OK', ['Content-Type: text/plain', 'Content-Length: 100']) + '0123456789');
      endConn(conn);
      return 'closed';
    case 'body':
      send(conn, Buffer.concat([Buffer.from(head(Number(q.status ?? 200), 'Some Reason',
        ['Content-Type: text/plain', `Content-Length: ${n}`])), pattern(n)]));
      return 'keep';
    case '204':
      send(conn, head(204, 'No Content', ['X-Nothing: here']));
      return 'keep';
    case 'redirect':
      send(conn, simple(302, '', ['Location: /ok?redirected']));
      return 'keep';
    case 'status': {
      const extra = [];
      if (q.retry_after) extra.push(`Retry-After: ${q.retry_after}`);
      if (q.retry_date) {
        const at = Math.ceil(Date.now() / 1000 + Number(q.retry_date)) * 1000;
        extra.push(`Retry-After: ${new Date(at).toUTCString()}`);
      }
      send(conn, simple(n, `{"status": ${n}}`, extra));
      return 'keep';
    }
    case 'late':
      await sleep(n);
      send(conn, simple(200, 'late'));
      return 'keep';
    default:
      send(conn, simple(200, 'ok'));
      return 'keep';
  }
}

// Parses the head at the start of buf: null while incomplete, or the
// request (without its body) and the head's length.
function parseHead(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) {
    if (buf.length > MAX_HEAD) return { error: 'head too large' };
    return null;
  }
  const text = buf.subarray(0, end).toString('latin1');
  const lines = text.split('\r\n');
  const requestLine = lines.shift();
  const m = /^([A-Z]+) (\S+) (HTTP\/\d\.\d)$/.exec(requestLine);
  if (!m) return { error: `bad request line ${JSON.stringify(requestLine)}` };
  const headers = {};
  const counts = {};
  let bareLf = requestLine.includes('\n');
  for (const line of lines) {
    if (line.includes('\n')) bareLf = true;
    const i = line.indexOf(':');
    if (i <= 0) return { error: `bad header line ${JSON.stringify(line)}` };
    const name = line.slice(0, i).toLowerCase();
    const value = line.slice(i + 1).trim();
    counts[name] = (counts[name] ?? 0) + 1;
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return {
    req: {
      method: m[1], target: m[2], version: m[3], lines, headers, counts, bareLf,
      chunked: /chunked/i.test(headers['transfer-encoding'] ?? ''),
      length: Number(headers['content-length'] ?? 0),
    },
    headLength: end + 4,
  };
}

// The chunked body at the start of buf: null while incomplete, or the body
// and the bytes it took.
function parseChunked(buf) {
  const parts = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return null;
    const size = parseInt(buf.subarray(at, eol).toString('latin1').split(';')[0], 16);
    at = eol + 2;
    if (size === 0) {
      // trailer fields, then an empty line
      for (;;) {
        const e = buf.indexOf('\r\n', at);
        if (e < 0) return null;
        const empty = e === at;
        at = e + 2;
        if (empty) return { body: Buffer.concat(parts), used: at };
      }
    }
    if (buf.length < at + size + 2) return null;
    parts.push(buf.subarray(at, at + size));
    at += size + 2;
  }
}

// Reads the connection's requests one after the other.
function pump(conn) {
  for (;;) {
    if (conn.busy || conn.sock.destroyed) return;
    if (!conn.req) {
      if (conn.buf.length === 0) return;
      const h = parseHead(conn.buf);
      if (!h) return;
      if (h.error) {
        process.stderr.write(`raw_receiver: connection ${conn.id}: ${h.error}\n`);
        conn.sock.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        conn.closing = true;
        return;
      }
      conn.buf = conn.buf.subarray(h.headLength);
      conn.req = h.req;
      conn.req.number = ++conn.requests;
      conn.req.receivedAt = Date.now() / 1000;
      conn.req.pipelined = conn.earlyBytes;
      conn.earlyBytes = false;
      if (conn.req.target.split('?')[0] === '/early' && !conn.saidClose && !conn.dropNext) {
        // the answer before the body is read
        conn.req.early = true;
        conn.req.completeAtAnswer = !conn.req.chunked && conn.buf.length >= conn.req.length;
        send(conn, simple(200, 'early'));
      }
    }
    const req = conn.req;
    if (req.chunked) {
      const c = parseChunked(conn.buf);
      if (!c) return;
      req.body = c.body;
      conn.buf = conn.buf.subarray(c.used);
    } else {
      if (conn.buf.length < req.length) return;
      req.body = conn.buf.subarray(0, req.length);
      conn.buf = conn.buf.subarray(req.length);
    }
    conn.req = null;
    if (conn.saidClose) {
      record(conn, req, { answered: false, after_close: true });
      continue;
    }
    if (conn.closing) {
      // it came after this side was closed unannounced (/drop): too late
      record(conn, req, { answered: false, dropped: true });
      continue;
    }
    if (conn.dropNext) {
      record(conn, req, { answered: false, dropped: true });
      // (under TLS, the TCP connection: the TLS socket cannot be reset)
      if (conn.dropNext === 'reset') conn.raw.resetAndDestroy();
      else endConn(conn);
      conn.dropNext = false;
      conn.closing = true;
      return;
    }
    if (req.early) {
      record(conn, req, { early: true, body_complete_at_answer: req.completeAtAnswer });
      continue;
    }
    record(conn, req);
    // the next request's bytes came before this one is answered
    if (conn.buf.length > 0) conn.earlyBytes = true;
    conn.busy = true;
    respond(conn, req).then((state) => {
      conn.busy = false;
      if (state === 'keep') {
        armIdle(conn);
        pump(conn);
      }
    }, (err) => {
      process.stderr.write(`raw_receiver: ${err.stack}\n`);
      conn.sock.destroy();
    });
  }
}

function armIdle(conn) {
  clearTimeout(conn.idleTimer);
  if (conn.idleMs > 0) conn.idleTimer = setTimeout(() => endConn(conn), conn.idleMs);
}

const server = net.createServer((raw) => {
  raw.setNoDelay(true);
  // with TLS, everything goes through the TLS socket over the TCP one
  const sock = secureContext
    ? new tls.TLSSocket(raw, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] })
    : raw;
  const conn = {
    id: nextConnection++, raw, sock, tls: null, buf: Buffer.alloc(0), req: null, requests: 0,
    busy: false, earlyBytes: false, idleMs: 0, idleTimer: null,
    saidClose: false, dropNext: false, closing: false,
  };
  if (secureContext) {
    sock.on('secure', () => {
      conn.tls = {
        version: sock.getProtocol(),
        alpn: sock.alpnProtocol,
        session_reused: sock.isSessionReused(),
      };
    });
    sock.on('error', (err) => {
      // a handshake that failed: nothing of HTTP came on this connection
      if (conn.tls || !args.log) return;
      fs.appendFileSync(args.log, JSON.stringify({
        tls_error: err.code ?? 'unknown', tls_message: err.message.split('\n')[0],
        connection: conn.id, received_at: Date.now() / 1000,
      }) + '\n');
    });
    raw.on('error', () => {});
  }
  sock.on('data', (d) => {
    // bytes of a new request while the last one is not answered yet
    if (conn.busy) conn.earlyBytes = true;
    conn.buf = Buffer.concat([conn.buf, d]);
    clearTimeout(conn.idleTimer);
    pump(conn);
  });
  sock.on('error', () => {});
  sock.on('close', () => clearTimeout(conn.idleTimer));
});
server.listen(args.port, '127.0.0.1', () => {
  if (args.portFile) fs.writeFileSync(args.portFile, String(server.address().port));
});

process.on('SIGTERM', () => process.exit(0));
