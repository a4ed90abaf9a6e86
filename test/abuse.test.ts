// Slow and abusive clients against the real server in its own process (so that client and server do not
// share the fd limit or the event loop): clients that send part of the headers and stall, a client that
// pipelines requests and never reads the answers, and thousands of idle connections. The server must keep
// answering a well-behaved client throughout. Behaviour only (answers arrive, the server is still serving);
// speed under these conditions is measured by the benchmarks, not asserted here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { fixture } from '../bench/fixtures.ts';
import type { Certs, Proc } from '../bench/run.ts';
import { benchCerts, startWebhook } from '../bench/run.ts';
import { defaultConfig } from '../webhook/config.ts';
import { silentLogger } from '../webhook/log.ts';
import { startServer } from '../webhook/server.ts';
import { startValidation } from '../webhook/validation.ts';

const SERVER_NAME = 'kagenti-webhook.kagenti-system.svc';
let certs: Certs;
let ca: string;
let server: Proc;
let agent: https.Agent;
const abusers: net.Socket[] = [];
let abusersClosing = false;

before(async () => {
  certs = await benchCerts();
  ca = readFileSync(certs.caFile, 'utf8');
  server = await startWebhook(certs, { server: 'module', logLevel: 'info', logFile: '/dev/null' });
  agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca, servername: SERVER_NAME });
});

after(async () => {
  for (const s of abusers) s.destroy();
  agent?.destroy();
  await server?.stop();
});

/** One well-behaved admission request (TLS verified against the CA); resolves with the parsed answer. */
function admit(path = '/mutate', uid = `good-${Math.random()}`): Promise<{ status: number; uid: string; allowed: boolean; patched: boolean }> {
  const body = JSON.stringify(fixture('small').review(uid));
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 60_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          try {
            const r = JSON.parse(Buffer.concat(chunks).toString('utf8')).response;
            resolve({ status: res.statusCode ?? 0, uid: r.uid, allowed: r.allowed, patched: r.patchType === 'JSONPatch' });
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 60 s')));
    req.on('error', reject);
    req.end(body);
  });
}

async function stillAnswering(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const uid = `good-${i}-${Date.now()}`;
    const r = await admit(i % 2 ? '/validate' : '/mutate', uid);
    assert.equal(r.status, 200);
    assert.equal(r.uid, uid);
    assert.equal(r.allowed, true);
    if (i % 2 === 0) assert.equal(r.patched, true);
  }
}

function tlsConnect(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: server.port, ca, servername: SERVER_NAME }, () => resolve(s));
    s.on('error', reject);
  });
}

function tcpConnect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: server.port }, () => resolve(s));
    s.on('error', reject);
  });
}

function fdLimit(): number {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim()) || 1024;
  } catch {
    return 1024;
  }
}

test('the server sets timeouts against slow clients', async () => {
  const config = defaultConfig();
  const log = silentLogger();
  const validation = await startValidation({ config, log, cluster: 'none' });
  const s = await startServer({
    config,
    log,
    validation,
    host: '127.0.0.1',
    port: 0,
    probePort: 0,
    tls: { cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) },
  });
  try {
    for (const srv of [s.https, s.probe]) {
      assert.ok(srv.headersTimeout > 0 && Number.isFinite(srv.headersTimeout), 'headersTimeout');
      assert.ok(srv.requestTimeout > 0 && Number.isFinite(srv.requestTimeout), 'requestTimeout');
      assert.ok(srv.keepAliveTimeout > 0 && Number.isFinite(srv.keepAliveTimeout), 'keepAliveTimeout');
      assert.ok(srv.headersTimeout <= srv.requestTimeout, 'headers must time out no later than the whole request');
    }
  } finally {
    await s.close(100);
    await validation.close();
  }
});

test('clients that send part of the headers (or of the body) and stall do not block others', async () => {
  const slow: tls.TLSSocket[] = [];
  for (let i = 0; i < 200; i++) {
    const s = await tlsConnect();
    s.on('error', () => {});
    if (i % 2 === 0) s.write('POST /mutate HTTP/1.1\r\nHost: kagenti-webhook\r\nContent-Type: appl');
    else s.write('POST /mutate HTTP/1.1\r\nHost: kagenti-webhook\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"apiVersion":');
    slow.push(s);
    abusers.push(s);
  }
  await stillAnswering(40);
  // the stalled connections are still parked (not answered with garbage); the server is unaffected
  for (const s of slow) s.destroy();
  await stillAnswering(4);
});

test('a client that pipelines requests and never reads the answers does not block others', async () => {
  const s = await tlsConnect();
  s.on('error', () => {});
  s.pause(); // never read
  abusers.push(s);
  const body = JSON.stringify(fixture('deployment').review('never-read'));
  const one = `POST /mutate HTTP/1.1\r\nHost: kagenti-webhook\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  // ~40 MB of requests whose ~5.5 KB answers pile up unread
  for (let i = 0; i < 2000; i++) s.write(one);
  await new Promise((r) => setTimeout(r, 1500));
  await stillAnswering(40);
  const rss = server.rss();
  assert.ok(rss > 0 && rss < 600 * 1024 * 1024, `server RSS ${Math.round(rss / 1048576)} MB while a client does not read`);
  s.destroy();
  await stillAnswering(4);
});

test('thousands of idle connections do not stop the server from answering', async (t) => {
  // Both processes hold one fd per connection; keep headroom under the soft limit of this process.
  const limit = fdLimit();
  const wanted = 10_000;
  const count = Math.max(100, Math.min(wanted, limit - 1000));
  if (count < wanted) t.diagnostic(`fd limit ${limit}: using ${count} idle connections instead of ${wanted}`);
  const tlsIdle = Math.min(500, Math.floor(count / 10));
  const idle: net.Socket[] = [];
  // The server drops connections that have not finished TLS within its 10 s handshakeTimeout: on a slow
  // machine the first of these sockets can reach that age while the rest are still being opened. A socket
  // the server closes younger than that is a failure; one closed at that age is the protection working.
  const openedAt = new Map<net.Socket, number>();
  const closedEarly: number[] = [];
  let timedOut = 0;
  const watch = (s: net.Socket) => {
    openedAt.set(s, Date.now());
    s.on('error', () => {});
    s.once('close', () => {
      if (abusersClosing) return;
      const age = Date.now() - openedAt.get(s)!;
      if (age >= 9_000) timedOut++;
      else closedEarly.push(age);
    });
  };
  // plain TCP connections that never start the TLS handshake
  for (let i = 0; i < count - tlsIdle; i += 250) {
    // the age clock starts as each socket connects (the server's starts when it accepts it)
    const batch = await Promise.all(Array.from({ length: Math.min(250, count - tlsIdle - i) }, () => tcpConnect().then((s) => (watch(s), s))));
    idle.push(...batch);
  }
  // and TLS connections that complete the handshake, then send nothing
  for (let i = 0; i < tlsIdle; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, tlsIdle - i) }, () => tlsConnect()));
    for (const s of batch) s.on('error', () => {});
    idle.push(...batch);
  }
  abusers.push(...idle);
  const open = idle.filter((s) => !s.destroyed).length;
  assert.deepEqual(closedEarly.slice(0, 5), [], `${closedEarly.length} idle connections were closed before the handshake timeout`);
  assert.ok(open + timedOut >= count * 0.95, `only ${open} of ${count} idle connections stayed open (${timedOut} reached the handshake timeout)`);
  if (timedOut) t.diagnostic(`${timedOut} never-TLS connections reached the 10 s handshake timeout while the rest were opened`);
  const started = process.hrtime.bigint();
  await stillAnswering(40);
  t.diagnostic(`${open} idle connections: 40 admissions answered in ${Number(process.hrtime.bigint() - started) / 1e6} ms; server RSS ${Math.round(server.rss() / 1048576)} MB`);
  abusersClosing = true;
  for (const s of idle) s.destroy();
  await new Promise((r) => setTimeout(r, 200));
  await stillAnswering(4);
});
