// KubeWatch (webhook/kube-http.ts): watches over node:http(s), with the contract client-node's ListWatch relies on.
// The servers here are small node:http servers that STAND IN FOR AN API SERVER: they answer a watch request with
// what the API server sends (a stream of JSON lines, one event each, or a Status with an error code); they are not
// one. The informers' behaviour over the same watches, against the recorded-response fake, is in
// cluster-resilience.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import https from 'node:https';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '../webhook/kube-client.ts';
import { KubeWatch, KubeHttpError, kubeGetJson } from '../webhook/kube-http.ts';
import { generateCertificates } from '../webhook/certs.ts';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function standIn(handler: Handler): Promise<{ kc: KubeConfig; requests: http.IncomingMessage[]; sockets: Set<import('node:net').Socket>; close(): Promise<void> }> {
  const requests: http.IncomingMessage[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromString(
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\n` +
      'users: [{name: u, user: {token: secret-token}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
  );
  return {
    kc,
    requests,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Runs one watch; resolves with its events and what done() got (once it has been called). */
function run(w: KubeWatch, path = '/api/v1/pods', q: Record<string, string | number | boolean | undefined> = {}) {
  const events: { type: string; obj: any }[] = [];
  let doneCalls = 0;
  let resolveDone!: (err: unknown) => void;
  const ended = new Promise<unknown>((r) => (resolveDone = r));
  const started = w.watch(
    path,
    q,
    (type, obj) => {
      events.push({ type, obj });
    },
    (err) => {
      doneCalls++;
      resolveDone(err);
    },
  );
  return { events, ended, started, doneCalls: () => doneCalls };
}

const pod = (name: string, rv: string) => ({ kind: 'Pod', apiVersion: 'v1', metadata: { name, namespace: 'team-a', resourceVersion: rv } });

test('a watch: its query and credentials, every event in order across chunk boundaries (a line and a UTF-8 character split), then done(null) once at the end', async () => {
  const lines = [
    JSON.stringify({ type: 'ADDED', object: pod('agent-ä', '10') }),
    JSON.stringify({ type: 'MODIFIED', object: pod('agent-ä', '11') }),
    JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: '12' } } }),
    JSON.stringify({ type: 'DELETED', object: pod('agent-b', '13') }),
  ];
  const body = Buffer.from(lines.join('\n') + '\n', 'utf8');
  const s = await standIn((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    // three bytes at a time: lines and the two-byte ä are cut across writes
    let i = 0;
    const next = () => {
      if (i >= body.length) return res.end();
      res.write(body.subarray(i, (i += 3)));
      setImmediate(next);
    };
    next();
  });
  try {
    const r = run(new KubeWatch(s.kc), '/api/v1/pods', { resourceVersion: '9', labelSelector: 'kagenti.io/type in (agent,tool)', allowWatchBookmarks: true, timeoutSeconds: 75, fieldSelector: undefined });
    assert.ok((await r.started) instanceof AbortController);
    assert.equal(await r.ended, null);
    assert.deepEqual(r.events.map((e) => `${e.type} ${e.obj.metadata.name ?? ''} ${e.obj.metadata.resourceVersion}`), ['ADDED agent-ä 10', 'MODIFIED agent-ä 11', 'BOOKMARK  12', 'DELETED agent-b 13']);
    assert.equal(r.doneCalls(), 1);
    const req = s.requests[0]!;
    const url = new URL(req.url!, 'http://x');
    assert.equal(url.pathname, '/api/v1/pods');
    assert.deepEqual(Object.fromEntries(url.searchParams), { watch: 'true', resourceVersion: '9', labelSelector: 'kagenti.io/type in (agent,tool)', allowWatchBookmarks: 'true', timeoutSeconds: '75' });
    assert.equal(req.headers.authorization, 'Bearer secret-token');
    assert.equal(req.headers.accept, 'application/json');
  } finally {
    await s.close();
  }
});

test('a refused watch: done gets the HTTP status as statusCode and the Status message, before watch() resolves; a 410 is statusCode 410 (ListWatch lists again)', async () => {
  for (const [code, reason] of [
    [403, 'pods is forbidden: User "system:serviceaccount:kagenti-system:kagenti-webhook" cannot watch resource "pods" in API group "" at the cluster scope'],
    [410, 'too old resource version: 9 (4711)'],
  ] as const) {
    const s = await standIn((_req, res) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: reason, code }));
    });
    try {
      const r = run(new KubeWatch(s.kc));
      let doneBeforeResolve = false;
      await r.started.then(() => (doneBeforeResolve = r.doneCalls() === 1));
      assert.ok(doneBeforeResolve, 'done was called before watch() resolved');
      const err = (await r.ended) as KubeHttpError;
      assert.ok(err instanceof KubeHttpError);
      assert.equal(err.statusCode, code);
      assert.equal(err.message, `HTTP ${code}: ${reason}`);
      assert.deepEqual(r.events, []);
    } finally {
      await s.close();
    }
  }
  // not a Status: the reason phrase
  const s = await standIn((_req, res) => {
    res.writeHead(503, { 'Content-Type': 'text/html' });
    res.end('<html>upstream unavailable</html>');
  });
  try {
    const err = (await run(new KubeWatch(s.kc)).ended) as KubeHttpError;
    assert.equal(err.statusCode, 503);
    assert.equal(err.message, 'HTTP 503: Service Unavailable');
  } finally {
    await s.close();
  }
});

test('timeouts: no response headers within requestTimeoutMs, or a connected watch silent that long, end it with a TimeoutError (its socket closed); data keeps it alive', async () => {
  // headers never come
  const s1 = await standIn(() => {});
  try {
    const w = new KubeWatch(s1.kc);
    w.requestTimeoutMs = 150;
    const t0 = Date.now();
    const r = run(w);
    const err = (await r.ended) as Error;
    assert.equal(err.name, 'TimeoutError');
    assert.ok(Date.now() - t0 >= 140, 'not before the timeout');
    await r.started;
    await waitFor(() => s1.sockets.size === 0, 'the socket closed');
  } finally {
    await s1.close();
  }
  // connected: an event every 50 ms for 400 ms keeps it alive, then silence ends it
  const s2 = await standIn((_req, res) => {
    res.writeHead(200);
    let n = 0;
    const iv = setInterval(() => {
      res.write(JSON.stringify({ type: 'MODIFIED', object: pod('a', String(++n)) }) + '\n');
      if (n === 8) clearInterval(iv);
    }, 50);
  });
  try {
    const w = new KubeWatch(s2.kc);
    w.requestTimeoutMs = 150;
    const r = run(w);
    await r.started;
    const err = (await r.ended) as Error;
    assert.equal(err.name, 'TimeoutError');
    assert.equal(r.events.length, 8, 'every event before the silence');
    assert.equal(r.doneCalls(), 1);
    await waitFor(() => s2.sockets.size === 0, 'the socket closed');
  } finally {
    await s2.close();
  }
});

test('abort (ListWatch stopping or restarting a watch): the request is closed and done is called once', async () => {
  const s = await standIn((_req, res) => {
    res.writeHead(200);
    res.write(JSON.stringify({ type: 'ADDED', object: pod('a', '1') }) + '\n');
  });
  try {
    const r = run(new KubeWatch(s.kc));
    const ctl = await r.started;
    await waitFor(() => r.events.length === 1, 'the first event');
    ctl.abort();
    ctl.abort();
    const err = (await r.ended) as Error;
    assert.equal(err.name, 'AbortError');
    await waitFor(() => s.sockets.size === 0, 'the socket closed');
    assert.equal(r.doneCalls(), 1);
  } finally {
    await s.close();
  }
});

test('what client-node would drop without a word ends the watch as failed: a line that is not JSON, a line over the limit, an event the callback cannot apply', async () => {
  const good = JSON.stringify({ type: 'ADDED', object: pod('a', '1') });
  const cases: [string, string | Buffer, RegExp, number][] = [
    ['not JSON', `${good}\n{"type":"MODIFIED","object":\n`, /^the API server sent a watch line that is not JSON \(\d+ characters, starting "\{\\"type\\":\\"MODIFIED\\"/, 1],
    ['over the limit', `${good}\n{"type":"ADDED","object":{"metadata":{"name":"${'x'.repeat(5000)}"}}}\n`, /^the API server sent a watch line over 2048 bytes; the watch is ended$/, 1],
    ['unterminated, not JSON', `${good}\n{"type":"MOD`, /not JSON/, 1],
    // counted in bytes: 1,200 two-byte characters are 2,400 bytes
    ['over the limit in bytes, not in characters', Buffer.from(`${good}\n{"type":"ADDED","object":{"metadata":{"name":"${'é'.repeat(1200)}"}}}\n`), /^the API server sent a watch line over 2048 bytes; the watch is ended$/, 1],
  ];
  for (const [what, body, expected, events] of cases) {
    const s = await standIn((_req, res) => {
      res.writeHead(200);
      res.end(body);
    });
    try {
      const w = new KubeWatch(s.kc);
      w.maxLineBytes = 2048;
      const r = run(w);
      const err = (await r.ended) as Error;
      assert.ok(err instanceof Error, what);
      assert.match(err.message, expected, what);
      assert.equal(r.events.length, events, what);
      assert.equal(r.doneCalls(), 1, what);
    } finally {
      await s.close();
    }
  }
  // a line of exactly the limit in bytes, of multi-byte characters, cut inside one and ended by \r\n: delivered whole
  const head = '{"type":"ADDED","object":{"metadata":{"name":"';
  const tail = '"}}}';
  const name = 'é'.repeat((2048 - head.length - tail.length) / 2);
  const exact = Buffer.from(`${head}${name}${tail}\r\n`);
  assert.equal(exact.length, 2050);
  const atLimit = await standIn((_req, res) => {
    res.writeHead(200);
    res.write(exact.subarray(0, 1001));
    setTimeout(() => res.end(exact.subarray(1001)), 20);
  });
  try {
    const w = new KubeWatch(atLimit.kc);
    w.maxLineBytes = 2048;
    const r = run(w);
    assert.equal(await r.ended, null);
    assert.deepEqual(r.events.map((e) => e.obj?.metadata?.name), [name]);
  } finally {
    await atLimit.close();
  }
  // a line that never ends, arriving in pieces: ended once it is over the limit, not held as it grows
  const streaming = await standIn((_req, res) => {
    res.writeHead(200);
    res.write(`${good}\n{"type":"ADDED","object":{"metadata":{"name":"`);
    let n = 0;
    const iv = setInterval(() => {
      if (res.destroyed || ++n > 50) return clearInterval(iv);
      res.write('x'.repeat(500));
    }, 5);
  });
  try {
    const w = new KubeWatch(streaming.kc);
    w.maxLineBytes = 2048;
    const r = run(w);
    assert.match(((await r.ended) as Error).message, /^the API server sent a watch line over 2048 bytes; the watch is ended$/);
    assert.equal(r.events.length, 1);
    await waitFor(() => streaming.sockets.size === 0, 'the socket closed');
  } finally {
    await streaming.close();
  }
  // the callback throws: the watch ends with that error, and later lines are not delivered
  const s = await standIn((_req, res) => {
    res.writeHead(200);
    res.end(`${good}\n${good}\n${good}\n`);
  });
  try {
    const w = new KubeWatch(s.kc);
    let calls = 0;
    const ended = new Promise<unknown>((resolve) => {
      void w.watch('/api/v1/pods', {}, () => {
        calls++;
        throw new Error('cannot apply');
      }, resolve);
    });
    assert.equal(((await ended) as Error).message, 'cannot apply');
    assert.equal(calls, 1);
  } finally {
    await s.close();
  }
});

test('the API server unreachable: done gets the socket error itself (its code and address); credentials that cannot be had reject watch() before any request', async () => {
  const s = await standIn(() => {});
  const kc = s.kc;
  await s.close();
  const err = (await run(new KubeWatch(kc)).ended) as NodeJS.ErrnoException;
  assert.equal(err.code, 'ECONNREFUSED');
  assert.match(err.message, /^connect ECONNREFUSED 127\.0\.0\.1:\d+$/);

  const s2 = await standIn(() => {});
  try {
    const port = new URL(s2.kc.getCurrentCluster()!.server).port;
    const bad = new KubeConfig();
    bad.loadFromString(
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\n` +
        'users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /nonexistent/kagenti-test/get-token}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    let doneCalled = false;
    const w = new KubeWatch(bad);
    w.requestTimeoutMs = 500;
    await assert.rejects(w.watch('/api/v1/pods', {}, () => {}, () => (doneCalled = true)));
    assert.equal(doneCalled, false);
    assert.equal(s2.requests.length, 0);
  } finally {
    await s2.close();
  }
});

test('a refused watch whose body is huge or never ends: the status and reason phrase, without the rest of the body', async () => {
  let sent = 0;
  const s = await standIn((req, res) => {
    res.writeHead(req.url!.includes('huge') ? 403 : 500, { 'Content-Type': 'application/json' });
    if (req.url!.includes('huge')) {
      // 64 MiB of a Status that never closes, written as the client takes it
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      res.write('{"kind":"Status","message":"');
      const more = () => {
        while (sent < 64 && res.write(chunk)) sent++;
        if (sent < 64 && !res.destroyed) res.once('drain', () => (sent++, more()));
      };
      more();
    } else res.flushHeaders(); // headers, then nothing
  });
  try {
    const t0 = Date.now();
    const hung = (await run(new KubeWatch(s.kc), '/api/v1/pods/hung').ended) as KubeHttpError;
    assert.ok(hung instanceof KubeHttpError);
    assert.equal(hung.statusCode, 500, 'the status, not a timeout');
    assert.equal(hung.message, 'HTTP 500: Internal Server Error');
    assert.ok(Date.now() - t0 < 8000);
    const huge = (await run(new KubeWatch(s.kc), '/api/v1/pods/huge').ended) as KubeHttpError;
    assert.equal(huge.statusCode, 403);
    assert.equal(huge.message, 'HTTP 403: Forbidden');
    await waitFor(() => s.sockets.size === 0, 'the connections closed');
    assert.ok(sent < 16, `${sent} MiB of the body were sent before the client closed the connection`);
    // lists read a refusal the same way
    await assert.rejects(kubeGetJson(s.kc, '/api/v1/pods/huge'), (e: KubeHttpError) => e.statusCode === 403 && e.message === 'HTTP 403: Forbidden');
  } finally {
    await s.close();
  }
});

test('credentials as kubectl sends them: a token file ending in a newline (as `echo` writes it) is sent trimmed, by watches and lists', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-kube-watch-'));
  const s = await standIn((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(req.url!.includes('watch=true') ? '' : '{"kind":"PodList","items":[],"metadata":{"resourceVersion":"1"}}');
  });
  try {
    writeFileSync(join(dir, 'token'), 'abc123\n');
    const kc = new KubeConfig();
    kc.loadFromString(
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${s.kc.getCurrentCluster()!.server}", insecure-skip-tls-verify: true}}]\n` +
        `users: [{name: u, user: {token-file: ${join(dir, 'token')}}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`,
    );
    assert.equal(await run(new KubeWatch(kc)).ended, null);
    await kubeGetJson(kc, '/api/v1/pods');
    assert.deepEqual(s.requests.map((r) => r.headers.authorization), ['Bearer abc123', 'Bearer abc123']);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cluster CA that rotates while the process runs (the service account\'s ca.crt gains the new CA; the API server serves a certificate of it): later watches and lists trust it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-kube-watch-ca-'));
  const [one, two] = [await generateCertificates({ service: 'kubernetes', namespace: 'default', dev: true }), await generateCertificates({ service: 'kubernetes', namespace: 'default', dev: true })];
  const server = https.createServer({ cert: one.tlsCert, key: one.tlsKey }, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(req.url!.includes('watch=true') ? `${JSON.stringify({ type: 'ADDED', object: pod('a', '1') })}\n` : '{"kind":"PodList","items":[],"metadata":{"resourceVersion":"1"}}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const caFile = join(dir, 'ca.crt');
    writeFileSync(caFile, one.caCert);
    const kc = new KubeConfig();
    kc.loadFromString(
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:${(server.address() as AddressInfo).port}", certificate-authority: ${caFile}}}]\n` +
        'users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    assert.equal(await run(new KubeWatch(kc)).ended, null);
    await kubeGetJson(kc, '/api/v1/pods');
    // the rotation: both CAs in the file, the new certificate served
    writeFileSync(caFile, one.caCert + two.caCert);
    server.setSecureContext({ cert: two.tlsCert, key: two.tlsKey });
    const r = run(new KubeWatch(kc));
    assert.equal(await r.ended, null);
    assert.equal(r.events.length, 1);
    await kubeGetJson(kc, '/api/v1/pods');
    // and a CA the file does not hold is still refused
    writeFileSync(caFile, one.caCert);
    const refused = (await run(new KubeWatch(kc)).ended) as NodeJS.ErrnoException;
    assert.match(String(refused?.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER_CERT/);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('property: however the stream is cut into writes (inside a line, inside a UTF-8 character, CRLF or LF), every event arrives once, in order, and done(null) once', async () => {
  let body = Buffer.alloc(0);
  let cuts: number[] = [];
  const s = await standIn((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    let from = 0;
    const parts = [...cuts, body.length].map((to) => {
      const part = body.subarray(from, Math.max(from, to));
      from = Math.max(from, to);
      return part;
    });
    const next = () => {
      const part = parts.shift();
      if (part === undefined) return res.end();
      if (part.length) res.write(part);
      setImmediate(next);
    };
    next();
  });
  try {
    const name = fc.string({ unit: fc.constantFrom('a', 'ä', '€', '😀', '"', '\\', ' ', '\u2028'), minLength: 1, maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ type: fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK'), name }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (events, crlf, lastNewline, rawCuts) => {
          const lines = events.map((e, i) => JSON.stringify({ type: e.type, object: pod(e.name, String(i + 1)) }));
          body = Buffer.from(lines.join(crlf ? '\r\n' : '\n') + (lastNewline ? (crlf ? '\r\n' : '\n') : ''), 'utf8');
          cuts = [...new Set(rawCuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
          const r = run(new KubeWatch(s.kc));
          assert.equal(await r.ended, null);
          assert.deepEqual(
            r.events.map((e) => [e.type, e.obj.metadata.name, e.obj.metadata.resourceVersion]),
            events.map((e, i) => [e.type, e.name, String(i + 1)]),
          );
          assert.equal(r.doneCalls(), 1);
        },
      ),
      { numRuns: 60 },
    );
  } finally {
    await s.close();
  }
});

async function waitFor(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a stop signal ends a watch still waiting for its response headers (an informer stopped then; ListWatch.stop() cannot reach it), and one that is streaming; its listener is removed when the watch ends', async () => {
  const { EventEmitter } = await import('node:events');
  const getEventListeners = EventEmitter.getEventListeners;
  const silent = await standIn(() => {}); // accepts the request and never answers
  try {
    const stop = new AbortController();
    const w = new KubeWatch(silent.kc);
    let done = 0;
    const ended = new Promise<unknown>((resolve) =>
      void w.watch('/api/v1/pods', {}, () => {}, (err) => {
        done++;
        resolve(err);
      }, stop.signal),
    );
    await waitFor(() => silent.requests.length === 1, 'the request');
    assert.equal(getEventListeners(stop.signal, 'abort').length, 1);
    stop.abort();
    assert.equal(((await ended) as Error).name, 'AbortError');
    await waitFor(() => silent.sockets.size === 0, 'the socket closed');
    assert.equal(done, 1);
    assert.equal(getEventListeners(stop.signal, 'abort').length, 0);
    // already stopped: no request at all, done at once
    let later: unknown = 'not called';
    const ctl = await w.watch('/api/v1/pods', {}, () => {}, (err) => (later = err), stop.signal);
    assert.equal((later as Error).name, 'AbortError');
    assert.ok(ctl.signal.aborted);
    assert.equal(silent.requests.length, 1);
  } finally {
    await silent.close();
  }
  // a watch that ends by itself leaves no listener on a long-lived signal
  const streaming = await standIn((_req, res) => {
    res.writeHead(200);
    res.end(`${JSON.stringify({ type: 'ADDED', object: pod('a', '1') })}\n`);
  });
  try {
    const stop = new AbortController();
    const w = new KubeWatch(streaming.kc);
    for (let i = 0; i < 3; i++) {
      const err = await new Promise<unknown>((resolve) => void w.watch('/api/v1/pods', {}, () => {}, resolve, stop.signal));
      assert.equal(err, null);
    }
    assert.equal(getEventListeners(stop.signal, 'abort').length, 0);
  } finally {
    await streaming.close();
  }
});
