// Slow and abusive clients against the real server in its own process (so that client and server do not
// share the fd limit or the event loop): clients that send part of the headers and stall, a client that
// pipelines requests and never reads the answers, and thousands of idle connections. The server must keep
// answering a well-behaved client throughout, and hold no more idle connections than --max-connections. Behaviour only (answers arrive, the server is still serving);
// speed under these conditions is measured by the benchmarks, not asserted here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { fixture } from '../bench/fixtures.ts';
import type { Certs, Proc } from '../bench/run.ts';
import { benchCerts, startWebhook } from '../bench/run.ts';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_QUIET_MS } from '../webhook/server.ts';
import { startTestServer } from './helpers.ts';

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
  // benchCerts made a kagenti-bench-* directory for the certificates: removed with them
  if (certs) rmSync(dirname(certs.dir), { recursive: true, force: true });
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
  const s = await startTestServer();
  try {
    for (const srv of [s.server.https, s.server.probe]) {
      assert.ok(srv.headersTimeout > 0 && Number.isFinite(srv.headersTimeout), 'headersTimeout');
      assert.ok(srv.requestTimeout > 0 && Number.isFinite(srv.requestTimeout), 'requestTimeout');
      assert.ok(srv.keepAliveTimeout > 0 && Number.isFinite(srv.keepAliveTimeout), 'keepAliveTimeout');
      // the API server (client-go: 90 s) closes its idle connections before we would: no close crosses a request
      assert.ok(srv.keepAliveTimeout > 90_000, 'keep-alive longer than the API server keeps an idle connection');
      assert.ok(srv.timeout === 0 || srv.timeout > srv.keepAliveTimeout, 'the socket timeout does not cut idle keep-alive connections first');
      assert.ok(srv.headersTimeout <= srv.requestTimeout, 'headers must time out no later than the whole request');
    }
  } finally {
    await s.close();
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

test('clients that trickle large bodies cannot hold more than the body budget', async () => {
  // 40 clients each declare a 3,000,000-byte body, send 2.5 MB of it and stall: 100 MB in all, over the 64 MiB
  // the server holds for bodies at once. It closes the connections sending theirs the longest.
  const slow: tls.TLSSocket[] = [];
  const chunk = Buffer.alloc(2_500_000, 'a');
  let closedByServer = 0;
  for (let i = 0; i < 40; i++) {
    const s = await tlsConnect();
    s.on('error', () => {});
    s.once('close', () => closedByServer++);
    s.write(`POST /mutate HTTP/1.1\r\nHost: kagenti-webhook\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n`);
    await new Promise<void>((r) => s.write(chunk, () => r()));
    slow.push(s);
    abusers.push(s);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const rss = server.rss();
  assert.ok(closedByServer >= 10, `only ${closedByServer} of 40 trickling clients were closed`);
  assert.ok(rss < 400 * 1024 * 1024, `server RSS ${Math.round(rss / 1048576)} MB while clients trickle bodies`);
  await stillAnswering(10);
  for (const s of slow) s.destroy();
  await stillAnswering(2);
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

test('thousands of idle connections: the server holds at most --max-connections, closes quiet ones, keeps answering', async (t) => {
  // Both processes hold one fd per connection; keep headroom under the soft limit of this process.
  const limit = fdLimit();
  const wanted = 10_000;
  const count = Math.max(100, Math.min(wanted, limit - 1000));
  if (count < wanted) t.diagnostic(`fd limit ${limit}: using ${count} idle connections instead of ${wanted}`);
  const tlsIdle = Math.min(500, Math.floor(count / 10));
  const idle: net.Socket[] = [];
  let closedByServer = 0;
  const watch = (s: net.Socket) => {
    s.on('error', () => {});
    s.once('close', () => {
      if (!abusersClosing) closedByServer++;
    });
  };
  // plain TCP connections that never start the TLS handshake
  for (let i = 0; i < count - tlsIdle; i += 250) {
    const batch = await Promise.all(Array.from({ length: Math.min(250, count - tlsIdle - i) }, () => tcpConnect().then((s) => (watch(s), s))));
    idle.push(...batch);
  }
  // and TLS connections that complete the handshake, then send nothing (the server may already have closed some)
  for (let i = 0; i < tlsIdle; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, tlsIdle - i) }, () => tlsConnect().then((s) => (watch(s), s), () => null)));
    for (const s of batch) if (s) idle.push(s);
  }
  abusers.push(...idle);
  const started = process.hrtime.bigint();
  await stillAnswering(40);
  const answeredMs = Number(process.hrtime.bigint() - started) / 1e6;
  await new Promise((r) => setTimeout(r, 300));
  const open = idle.filter((s) => !s.destroyed).length;
  const rss = server.rss();
  t.diagnostic(`${idle.length} idle connections opened: ${open} still open, server RSS ${Math.round(rss / 1048576)} MB, 40 admissions answered in ${Math.round(answeredMs)} ms`);
  // the cap (2,000 by default) plus the connections closed by the quiet sweep meanwhile: never all of them
  assert.ok(open <= DEFAULT_MAX_CONNECTIONS, `${open} idle connections still open, more than --max-connections (${DEFAULT_MAX_CONNECTIONS})`);
  assert.ok(rss < 400 * 1024 * 1024, `server RSS ${Math.round(rss / 1048576)} MB with ${open} idle connections`);
  // Every idle connection is closed by the server within --quiet-seconds (5) and a sweep of opening the last one.
  const deadline = Date.now() + DEFAULT_QUIET_MS + 3_000;
  while (idle.some((s) => !s.destroyed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(idle.filter((s) => !s.destroyed).length, 0, 'idle connections left open after --quiet-seconds');
  assert.equal(closedByServer, idle.length);
  const metrics = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.probePort, path: '/metrics' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
  const closedTotal = (reason: string) => Number(new RegExp(`kagenti_webhook_connections_closed_total\\{reason="${reason}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  if (idle.length > DEFAULT_MAX_CONNECTIONS) assert.ok(closedTotal('evicted') > 0, 'evictions are counted');
  assert.ok(closedTotal('quiet') > 0, 'quiet closes are counted');
  await stillAnswering(4);
});
