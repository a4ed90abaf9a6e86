// What an operator sees of the serving certificate and of failed TLS handshakes: the expiry gauge, the reload
// counter, the lines at load and reload for a certificate that is expired, not valid yet or expiring within
// 14 days (served all the same), repeated by the periodic re-check while the server runs, and failed handshakes counted and reported in one warning line a minute at most,
// even under a flood of bad clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { defaultConfig } from '../webhook/config.ts';
import { registry } from '../webhook/metrics.ts';
import { CertificateReloader } from '../webhook/tls.ts';
import { capturingLogger, selfSignedPair, startTestServer } from './helpers.ts';
import type { Line } from './helpers.ts';
import { probeGet, startServerProcess, waitFor } from './server-process.ts';

const DAY = 86_400_000;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-tls-obs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}


/** A self-signed serving pair valid from `notBefore` to `notAfter`, naming the Service the API server calls. */
function pair(notBefore: Date, notAfter: Date): Promise<{ cert: string; key: string }> {
  return selfSignedPair({ notBefore, notAfter, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'kagenti-webhook.kagenti-system.svc' }])] });
}

function write(dir: string, p: { cert: string; key: string }): void {
  writeFileSync(join(dir, 'tls.crt'), p.cert);
  writeFileSync(join(dir, 'tls.key'), p.key);
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  const v = m.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

const EXPIRY = 'kagenti_webhook_tls_certificate_expiry_timestamp_seconds';
const RELOADS = 'kagenti_webhook_tls_reloads_total';
const HANDSHAKE_ERRORS = 'kagenti_webhook_tls_handshake_errors_total';

test('load: the expiry gauge holds notAfter; an expired, a not yet valid and an expiring certificate each get one line, and load still succeeds', async (t) => {
  const dir = tempDir(t);
  const now = Date.now();
  const cases: Array<{ name: string; from: number; to: number; level: number; pattern: RegExp }> = [
    { name: 'expired', from: now - 100 * DAY, to: now - 2 * DAY, level: 50, pattern: /^TLS certificate \S+tls\.crt expired \S+: the API server refuses it.*Fix: renew it/ },
    { name: 'not yet valid', from: now + 2 * DAY, to: now + 90 * DAY, level: 50, pattern: /^TLS certificate \S+tls\.crt is not valid until \S+: .*Fix: check the clock/ },
    { name: 'expiring in 5 days', from: now - DAY, to: now + 5 * DAY + 3_600_000, level: 40, pattern: /^TLS certificate \S+tls\.crt expires \S+, in 5 days: .*Fix: renew it/ },
    { name: 'expiring in hours', from: now - DAY, to: now + 3_600_000, level: 40, pattern: /in less than a day/ },
  ];
  for (const c of cases) {
    write(dir, await pair(new Date(c.from), new Date(c.to)));
    const { log, lines } = capturingLogger();
    const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log });
    reloader.load(); // does not throw: cert-manager may be about to renew it
    assert.equal(await metric(EXPIRY), Math.floor(c.to / 1000), c.name);
    const flagged = lines().filter((l) => l.level >= 40);
    assert.equal(flagged.length, 1, `${c.name}: ${JSON.stringify(flagged)}`);
    assert.equal(flagged[0]!.level, c.level, c.name);
    assert.match(flagged[0]!.msg, c.pattern, c.name);
    assert.ok(!flagged[0]!.msg.includes('\n'), 'one line');
  }
  // 20 days left: nothing to say
  write(dir, await pair(new Date(now - DAY), new Date(now + 20 * DAY)));
  const { log, lines } = capturingLogger();
  new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log }).load();
  assert.deepEqual(lines().filter((l) => l.level >= 40), []);
  assert.equal(await metric(EXPIRY), Math.floor((now + 20 * DAY) / 1000));
});

test('reload: tls_reloads_total counts ok and rejected (once per bad pair), the gauge follows the new certificate, an expiring one is warned about', async (t) => {
  const dir = tempDir(t);
  const now = Date.now();
  const first = await pair(new Date(now - DAY), new Date(now + 90 * DAY));
  write(dir, first);
  const { log, lines } = capturingLogger();
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log, pollMs: 60_000 });
  reloader.load();
  t.after(() => reloader.close());
  const ok0 = await metric(RELOADS, { result: 'ok' });
  const rejected0 = await metric(RELOADS, { result: 'rejected' });
  assert.equal(await metric(EXPIRY), Math.floor((now + 90 * DAY) / 1000));

  // a mismatched pair: rejected, counted once however often it is looked at
  const other = await pair(new Date(now - DAY), new Date(now + 3 * DAY));
  writeFileSync(join(dir, 'tls.crt'), other.cert);
  for (let i = 0; i < 3; i++) assert.equal(reloader.reloadNow(), false);
  assert.equal(await metric(RELOADS, { result: 'rejected' }), rejected0 + 1);
  assert.equal(await metric(EXPIRY), Math.floor((now + 90 * DAY) / 1000), 'still the served certificate');

  // the key arrives: installed, counted ok, the gauge moves, and 3 days left is a warning
  writeFileSync(join(dir, 'tls.key'), other.key);
  assert.equal(reloader.reloadNow(), true);
  assert.equal(await metric(RELOADS, { result: 'ok' }), ok0 + 1);
  assert.equal(await metric(EXPIRY), Math.floor((now + 3 * DAY) / 1000));
  const warn = lines().filter((l) => l.level === 40);
  assert.equal(warn.length, 1);
  assert.match(warn[0]!.msg, /expires \S+, in 3 days/);

  // an expired or not yet valid one does not replace a certificate the API server accepts: rejected, still served
  write(dir, await pair(new Date(now - 10 * DAY), new Date(now - DAY)));
  assert.equal(reloader.reloadNow(), false);
  assert.equal(await metric(RELOADS, { result: 'rejected' }), rejected0 + 2);
  assert.equal(await metric(EXPIRY), Math.floor((now + 3 * DAY) / 1000), 'still the served certificate');
  assert.ok(lines().some((l) => l.level === 50 && /is expired \S+, and the one served \(serial \w+\) is valid until \S+: the API server would refuse the new one, so it is not installed/.test(String((l.err as { message?: string } | undefined)?.message))));
  write(dir, await pair(new Date(now + 2 * DAY), new Date(now + 90 * DAY)));
  assert.equal(reloader.reloadNow(), false);
  assert.equal(await metric(RELOADS, { result: 'rejected' }), rejected0 + 3);
  assert.ok(lines().some((l) => l.level === 50 && /is not valid until \S+, and the one served/.test(String((l.err as { message?: string } | undefined)?.message))));
  // a notBefore a few seconds ahead (an issuer's clock) is within the grace: installed
  write(dir, await pair(new Date(now + 5_000), new Date(now + 90 * DAY)));
  assert.equal(reloader.reloadNow(), true);
  assert.equal(await metric(RELOADS, { result: 'ok' }), ok0 + 2);

  // with an expired certificate served, an expired one is installed too (it is what the files say), with an error line
  const dir2 = tempDir(t);
  write(dir2, await pair(new Date(now - 10 * DAY), new Date(now - DAY)));
  const old = new CertificateReloader({ certFile: join(dir2, 'tls.crt'), keyFile: join(dir2, 'tls.key'), log, pollMs: 60_000 });
  old.load();
  t.after(() => old.close());
  write(dir2, await pair(new Date(now - 5 * DAY), new Date(now - 2 * DAY)));
  assert.equal(old.reloadNow(), true);
  assert.equal(await metric(RELOADS, { result: 'ok' }), ok0 + 3);
  assert.ok(lines().some((l) => l.level === 50 && /expired/.test(l.msg)));
  // /metrics shows both series
  const text = await registry.metrics();
  assert.match(text, /kagenti_webhook_tls_reloads_total\{result="ok"\} \d/);
  assert.match(text, /kagenti_webhook_tls_reloads_total\{result="rejected"\} \d/);
});

const expiryLines = (lines: Line[]) => lines.filter((l) => l.level >= 40 && /^TLS certificate /.test(l.msg));

test('re-check: the state of the served certificate is logged again when it changes, and an unchanged one once per repeat interval', async (t) => {
  const dir = tempDir(t);
  const now = Date.now();
  write(dir, await pair(new Date(now - DAY), new Date(now + 20 * DAY)));
  const { log, lines } = capturingLogger();
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log });
  reloader.load();
  assert.deepEqual(expiryLines(lines()), [], '20 days left: nothing to say');
  assert.equal(reloader.checkExpiry(now + 3_600_000), false);
  // 13 days left a week later: the change to expiring is logged at once
  assert.equal(reloader.checkExpiry(now + 7 * DAY), true);
  assert.match(expiryLines(lines())[0]!.msg, /expires \S+, in 13 days: /);
  // the same state: not again within a day, again after one
  assert.equal(reloader.checkExpiry(now + 7 * DAY + 3_600_000), false);
  assert.equal(reloader.checkExpiry(now + 8 * DAY - 1000), false);
  assert.equal(reloader.checkExpiry(now + 8 * DAY), true);
  assert.match(expiryLines(lines())[1]!.msg, /in 12 days: /);
  // expired: an error at once, however recent the last warning
  assert.equal(reloader.checkExpiry(now + 20 * DAY + 3_600_000), true);
  const expired = expiryLines(lines())[2]!;
  assert.equal(expired.level, 50);
  assert.match(expired.msg, /expired \S+: the API server refuses it/);
  assert.equal(reloader.checkExpiry(now + 20 * DAY + 7_200_000), false);
  assert.equal(expiryLines(lines()).length, 3);
  // a new certificate starts afresh: its own line at reload, and the re-check goes by it
  write(dir, await pair(new Date(now - DAY), new Date(now + 90 * DAY)));
  assert.equal(reloader.reloadNow(), true);
  assert.equal(reloader.checkExpiry(now + 3_600_000), false);
  assert.equal(expiryLines(lines()).length, 3);
  // the metric is the one the load and reload set, untouched by the re-check
  assert.equal(await metric(EXPIRY), Math.floor((now + 90 * DAY) / 1000));
});

test('re-check timer: a certificate that expires while the server runs is logged when it does; an unchanged state is repeated after the repeat interval; the timer stops when the server closes', async (t) => {
  const dir = tempDir(t);
  const notAfter = Date.now() + 2_500; // X.509 keeps whole seconds: 1.5 to 2.5 s from now
  write(dir, await pair(new Date(Date.now() - DAY), new Date(notAfter)));
  const { log, lines } = capturingLogger();
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log, pollMs: 3_600_000, expiryCheckMs: 25 });
  t.after(() => reloader.close());
  const s = await startTestServer(defaultConfig(), undefined, { log, tls: reloader.serverOptions(), onHttpsServer: (srv) => reloader.attach(srv) });
  try {
    assert.equal(expiryLines(lines()).length, 1);
    assert.match(expiryLines(lines())[0]!.msg, /in less than a day/);
    await waitFor(() => expiryLines(lines()).length === 2, 'the line when the certificate expires', 10_000);
    const expired = expiryLines(lines())[1]!;
    assert.equal(expired.level, 50);
    assert.match(expired.msg, /expired/);
    assert.ok((expired.time as number) >= Math.floor(notAfter / 1000) * 1000, 'not before notAfter');
    // checked every 25 ms, but the unchanged state is not logged again (once per day)
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(expiryLines(lines()).length, 2);
  } finally {
    await s.close();
  }

  // repeated after the repeat interval while attached, and never after the server closed
  write(dir, await pair(new Date(Date.now() - DAY), new Date(Date.now() + 5 * DAY)));
  const second = capturingLogger();
  const repeating = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log: second.log, pollMs: 3_600_000, expiryCheckMs: 20, expiryRepeatMs: 200 });
  t.after(() => repeating.close());
  const s2 = await startTestServer(defaultConfig(), undefined, { log: second.log, tls: repeating.serverOptions(), onHttpsServer: (srv) => repeating.attach(srv) });
  try {
    await waitFor(() => expiryLines(second.lines()).length >= 3, 'two repeats', 10_000);
    const times = expiryLines(second.lines()).map((l) => l.time as number);
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 195, `lines ${times[i]! - times[i - 1]!} ms apart`);
    assert.ok(expiryLines(second.lines()).every((l) => l.level === 40 && /in 5 days/.test(l.msg)));
  } finally {
    await s2.close();
  }
  const after = expiryLines(second.lines()).length;
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(expiryLines(second.lines()).length, after, 'no line after the server closed');
});

test('re-check timer: attach starts no timer that keeps the process alive', async (t) => {
  const dir = tempDir(t);
  write(dir, await pair(new Date(Date.now() - DAY), new Date(Date.now() + 5 * DAY)));
  const { log } = capturingLogger();
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log, expiryCheckMs: 10 });
  const server = https.createServer(reloader.serverOptions());
  t.after(() => reloader.close());
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  reloader.attach(server);
  assert.equal(timers(), before, 'every timer attach starts is unref\'d');
});

/** `n` clients that connect and send plain HTTP to the TLS port (each one a failed handshake), `batch` at a time. */
async function badClients(port: number, n: number, batch = 250): Promise<void> {
  const one = () =>
    new Promise<void>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
  for (let sent = 0; sent < n; sent += batch) await Promise.all(Array.from({ length: Math.min(batch, n - sent) }, one));
}

const reportLines = (lines: Line[]) => lines.filter((l) => l.level === 40 && /TLS handshakes? on the admission port failed/.test(l.msg));

test('10,000 bad clients: each is counted, and the log gets one warning line (the rest are summed up in the next one)', async () => {
  const { log, lines } = capturingLogger();
  const s = await startTestServer(defaultConfig(), undefined, { log });
  const before = await metric(HANDSHAKE_ERRORS);
  try {
    await badClients(s.server.port, 10_000, 500);
    await waitFor(async () => (await metric(HANDSHAKE_ERRORS)) - before >= 10_000, 'every failed handshake counted');
    assert.equal((await metric(HANDSHAKE_ERRORS)) - before, 10_000);
    const during = reportLines(lines());
    assert.equal(during.length, 1, 'one line for the flood within the minute');
    assert.equal(during[0]!.handshakeErrors, 1);
    assert.match(during[0]!.msg, /^1 TLS handshake on the admission port failed since start-up from 1 address \(the last: ERR_SSL_HTTP_REQUEST, http request, from 127\.0\.0\.1\)\. If the API server is among these clients/);
    assert.deepEqual([during[0]!.remote, during[0]!.peers], ['127.0.0.1', 1], 'the peer is named');
    assert.ok(!lines().some((l) => l.msg === 'TLS handshake failed'), 'no line per failure at info level');
  } finally {
    await s.close();
  }
  // what was not reported yet is written at shutdown
  const all = reportLines(lines());
  assert.equal(all.length, 2);
  assert.equal(all[1]!.handshakeErrors, 9_999);
  assert.equal((all[1]!.lastError as { message: string }).message.length > 0, true);
});

test('handshake failures after the first are reported when the interval has passed, with the count and the last error', async () => {
  const { log, lines } = capturingLogger();
  const everyMs = 400;
  const s = await startTestServer(defaultConfig(), undefined, { log, handshakeReportMs: everyMs });
  try {
    await badClients(s.server.port, 1);
    await waitFor(() => reportLines(lines()).length === 1, 'the first failure at once');
    await badClients(s.server.port, 30, 10);
    assert.equal(reportLines(lines()).length, 1, 'the rest wait for the interval');
    await waitFor(() => reportLines(lines()).length === 2, 'the summary after the interval');
    const [first, second] = reportLines(lines()) as [Line, Line];
    assert.equal(second.handshakeErrors, 30);
    // the last peer, and how many distinct addresses failed in the window (all from this host here)
    assert.deepEqual([second.remote, second.peers], ['127.0.0.1', 1]);
    assert.match(second.msg, / from 1 address \(the last: .*, from 127\.0\.0\.1\)\./);
    assert.ok((second.sinceLastReportMs as number) >= everyMs - 5, `lines ${String(second.sinceLastReportMs)} ms apart`);
    assert.match(second.msg, /^30 TLS handshakes on the admission port failed in the last \d+ s from 1 address \(the last: /);
    assert.ok(typeof (second.lastError as { message?: unknown }).message === 'string');
    assert.equal(first.handshakeErrors, 1);
  } finally {
    await s.close();
  }
});

test('serve with an expired certificate starts, stays ready, logs an error, and /metrics shows the expiry', async (t) => {
  const dir = tempDir(t);
  const notAfter = Date.now() - 3 * DAY;
  write(dir, await pair(new Date(Date.now() - 30 * DAY), new Date(notAfter)));
  const p = await startServerProcess(['--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--warmup', '0']);
  try {
    assert.equal((await probeGet(p.probePort, '/readyz')).status, 200, 'readiness is not tied to the certificate');
    await waitFor(() => p.output().includes('expired'), 'the error line');
    const line = p
      .output()
      .split('\n')
      .filter((l) => l.includes('expired'))
      .map((l) => JSON.parse(l) as { level: string; msg: string })[0]!;
    assert.equal(line.level, 'error');
    const m = await probeGet(p.probePort, '/metrics');
    const v = /^kagenti_webhook_tls_certificate_expiry_timestamp_seconds (\d+)/m.exec(m.text);
    assert.ok(v, 'the gauge is exported');
    assert.equal(Number(v[1]), Math.floor(notAfter / 1000));
  } finally {
    p.kill();
    await p.exited;
  }
});
