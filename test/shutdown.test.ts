// Graceful shutdown of the real server process: on SIGTERM /readyz turns 503 at once, admissions keep
// being served for --drain-seconds, then the listener closes, in-flight admissions finish, and the
// process exits 0. Every request the server accepted gets its response.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { generateCertificates, writeCertificates } from '../webhook/certs.ts';
import { SERVER_NAME, within } from './helpers.ts';
import { admit, agentPod, probeGet, reviewBody, startLoad, startServerProcess, waitFor } from './server-process.ts';

async function certDir(t: { after: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-shutdown-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  writeCertificates(dir, certs);
  return { dir, ca: certs.caCert, args: ['--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key')] };
}

async function readyStatus(probePort: number): Promise<number> {
  try {
    return (await probeGet(probePort, '/readyz')).status;
  } catch {
    return -1; // probe listener closed
  }
}

/**
 * SIGTERM under a steady load of `fresh` workers (a new TLS connection per request) and `keepAlive`
 * workers (reused connections, as the API server's client does). Returns the load's stats.
 */
async function sigtermUnderLoad(t: { after: (fn: () => unknown) => void }, fresh: number, keepAlive: number) {
  const { ca, args } = await certDir(t);
  const proc = await startServerProcess([...args, '--drain-seconds', '2']);
  t.after(() => proc.kill('SIGKILL'));
  assert.equal(await readyStatus(proc.probePort), 200);

  const load = startLoad({ port: proc.port, ca, fresh, keepAlive });
  // a failed assertion below must not leave the load running (the test process would never end)
  let stopped: ReturnType<typeof load.stop> | undefined;
  const stopLoad = () => (stopped ??= load.stop());
  t.after(() => stopLoad());
  await waitFor(() => load.stats.ok >= 200, 'steady load');
  const okAtSigterm = load.stats.ok;
  proc.kill('SIGTERM');
  // Not ready at once (well within the drain), while admissions are still being answered.
  await waitFor(async () => (await readyStatus(proc.probePort)) === 503, '/readyz 503 after SIGTERM');
  const okWhenNotReady = load.stats.ok;
  await waitFor(() => load.stats.ok >= okWhenNotReady + 100, 'admissions served during the drain');
  assert.equal(load.stats.refused, 0, 'the listener stays open during the drain');
  // Then the listener closes: new connections are refused (never accepted, so not failures).
  await waitFor(() => load.stats.refused > 0 || load.stats.failures.length > 0, 'the listener to close after the drain');
  const exit = await within(proc.exited, 'the server to exit');
  const stats = await stopLoad();

  assert.equal(exit.code, 0, proc.output().slice(-500));
  assert.ok(stats.ok > okAtSigterm + 100);
  const out = proc.output();
  assert.match(out, /shutting down/);
  assert.match(out, /"msg":"stopped"/);
  assert.doesNotMatch(out, /\n\s+at /, 'no stack trace');
  return stats;
}

test('SIGTERM under load (new connections): not ready at once, served through the drain, every accepted request answered, exit 0', async (t) => {
  const stats = await sigtermUnderLoad(t, 8, 0);
  assert.deepEqual(stats.failures, [], `accepted requests without a response: ${stats.failures.slice(0, 5).join('; ')}`);
});

test(
  'SIGTERM under load (keep-alive connections): no reused connection is reset',
  async (t) => {
    const stats = await sigtermUnderLoad(t, 2, 6);
    assert.deepEqual(stats.failures, [], `accepted requests without a response: ${stats.failures.slice(0, 5).join('; ')}`);
  },
);

test('an admission still arriving when the listener closes is finished before exit', async (t) => {
  const { ca, args } = await certDir(t);
  const proc = await startServerProcess([...args, '--drain-seconds', '1']);
  t.after(() => proc.kill('SIGKILL'));

  // A slow client: headers and half the body now, the rest after the listener has closed.
  const uid = randomUUID();
  const body = reviewBody(uid, agentPod('slow-agent'));

  const socket: TLSSocket = connect({ host: '127.0.0.1', port: proc.port, ca, servername: SERVER_NAME });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  let response = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (response += d));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const half = Math.floor(body.length / 2);
  socket.write(
    `POST /mutate HTTP/1.1\r\nHost: ${SERVER_NAME}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
      body.slice(0, half),
  );

  proc.kill('SIGTERM');
  await waitFor(async () => (await readyStatus(proc.probePort)) !== 200, 'not ready');
  // Wait until the listener refuses new connections: the drain is over.
  await waitFor(async () => {
    const r = await admit(proc.port, ca, false);
    return !r.ok && r.refused;
  }, 'the listener to close');
  socket.write(body.slice(half));
  await waitFor(() => /\r\n\r\n[\s\S]*"uid"/.test(response), 'the slow admission response');
  assert.match(response, /^HTTP\/1\.1 200 /);
  assert.ok(response.includes(`"uid":"${uid}"`));
  await within(closed, 'the server to close the slow connection');
  const exit = await within(proc.exited, 'the server to exit');
  assert.equal(exit.code, 0);
});

test('a connection that never sent a request does not stop the process from exiting', async (t) => {
  const { ca, args } = await certDir(t);
  const proc = await startServerProcess([...args, '--drain-seconds', '0']);
  t.after(() => proc.kill('SIGKILL'));
  const socket: TLSSocket = connect({ host: '127.0.0.1', port: proc.port, ca, servername: SERVER_NAME });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.resume();
  proc.kill('SIGTERM');
  // The server closes it (the client never does) and exits cleanly.
  await within(closed, 'the server to close the connection that sent nothing');
  assert.equal((await within(proc.exited, 'the server to exit')).code, 0);
});

test('SIGHUP is logged and ignored (the config is read at start only): the server keeps serving; the start line and /metrics name the version', async (t) => {
  const { ca, args } = await certDir(t);
  // the image sets KAGENTI_WEBHOOK_REVISION (the Dockerfile, from make image's REVISION)
  const proc = await startServerProcess([...args, '--drain-seconds', '0'], { KAGENTI_WEBHOOK_REVISION: 'abc123def456-dirty' });
  t.after(() => proc.kill('SIGKILL'));
  // (the log is written in batches: the line may reach us after /healthz answers)
  await waitFor(() => /"msg":"listening"/.test(proc.output()), 'the listening line');
  assert.match(proc.output(), /"version":"\d+\.\d+\.\d+[^"]*","revision":"abc123def456-dirty".*"msg":"listening"/);
  const metrics = (await probeGet(proc.probePort, '/metrics')).text;
  assert.match(metrics, /^kagenti_webhook_build_info\{version="\d+\.\d+\.\d+[^"]*",revision="abc123def456-dirty"\} 1$/m);
  // the series the README's alerts watch exist at 0 before anything happened
  assert.match(metrics, /^kagenti_webhook_admission_requests_total\{webhook="mutate",operation="CREATE",result="error"\} 0$/m);
  assert.match(metrics, /^kagenti_webhook_http_client_errors_total\{status="404"\} 0$/m);
  proc.kill('SIGHUP');
  await waitFor(() => /SIGHUP ignored: the config is read at start only/.test(proc.output()), 'the SIGHUP line');
  const r = await admit(proc.port, ca, false);
  assert.deepEqual(r, { ok: true });
  assert.equal(await readyStatus(proc.probePort), 200);
  proc.kill('SIGTERM');
  assert.equal((await within(proc.exited, 'the server to exit')).code, 0);
});
