// README's metrics paragraph and its alerts name every metric the webhook exports, and only those: read from the
// /metrics of a real `serve --cluster none` process, which never loads cluster.ts (the metrics must exist there too,
// at 0: README's alerts and cluster_state_enabled's help say so).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates, writeCertificates } from '../webhook/certs.ts';
import { ROOT } from './helpers.ts';
import { probeGet, startServerProcess } from './server-process.ts';

const PREFIX = 'kagenti_webhook_';
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function section(start: string, end: string): string {
  const from = readme.indexOf(start);
  assert.ok(from >= 0, `README has "${start}"`);
  const to = readme.indexOf(end, from);
  assert.ok(to > from, `README has "${end}" after "${start}"`);
  return readme.slice(from, to);
}

test('README lists every kagenti_webhook_ metric a --cluster none server exports, and names none that does not exist', { skip: !existsSync(join(ROOT, 'dist', 'cli.js')) && 'needs the build (npm test builds first)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-docs-metrics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeCertificates(dir, await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' }));
  const proc = await startServerProcess(['--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--warmup', '0']);
  t.after(() => proc.kill('SIGKILL'));
  const scrape = await probeGet(proc.probePort, '/metrics');
  assert.equal(scrape.status, 200);
  const values = new Map([...scrape.text.matchAll(/^(kagenti_webhook_[a-z_]+)(?:\{[^}]*\})? (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  const exported = [...scrape.text.matchAll(/^# TYPE (kagenti_webhook_[a-z_]+) /gm)].map((m) => m[1]!.slice(PREFIX.length));
  assert.ok(exported.length >= 13, exported.join(' '));
  // without cluster state: the cluster metrics are there, at 0
  assert.equal(values.get(`${PREFIX}cluster_state_enabled`), 0);
  assert.equal(values.get(`${PREFIX}cluster_cache_age_seconds`), 0);
  for (const result of ['confirmed', 'dropped', 'unanswered'])
    assert.match(scrape.text, new RegExp(`^${PREFIX}admitted_claims_checked_total\\{result="${result}"\\} 0$`, 'm'));

  const paragraph = section('Metrics (prefix `kagenti_webhook_`)', '\n\n');
  const listed = new Set([...paragraph.matchAll(/`([a-z_]+)(?:\{[^`]*\})?`/g)].map((m) => m[1]!));
  for (const name of exported) assert.ok(listed.has(name), `README's metrics paragraph lacks ${name}`);
  for (const name of listed) if (/_(total|seconds|bytes|info|connections|violations)$/.test(name)) assert.ok(exported.includes(name), `README names ${name}, which is not exported`);
  assert.doesNotMatch(paragraph, /metrics below/, 'no pointer to metrics that do not follow');

  const alerts = section('Alerts worth having', '\n\n`inject` reads');
  const used = [...alerts.matchAll(/\b([a-z_]+?)(?:_bucket)?(?=[{[ ]|\)| -)/g)].map((m) => m[1]!).filter((n) => exported.includes(n));
  for (const name of ['tls_certificate_expiry_timestamp_seconds', 'admission_requests_total', 'tls_handshake_errors_total', 'tls_reloads_total', 'admission_duration_seconds', 'cluster_cache_age_seconds'])
    assert.ok(used.includes(name), `the alerts use ${name}`);
});
