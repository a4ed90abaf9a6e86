// README's metrics paragraph and its alerts name every metric the webhook exports, and only those.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PREFIX, registry } from '../webhook/metrics.ts';
import '../webhook/validation.ts';
import '../webhook/cluster.ts';
import '../webhook/issuer.ts';
import { ROOT } from './helpers.ts';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

function section(start: string, end: string): string {
  const from = readme.indexOf(start);
  assert.ok(from >= 0, `README has "${start}"`);
  const to = readme.indexOf(end, from);
  assert.ok(to > from, `README has "${end}" after "${start}"`);
  return readme.slice(from, to);
}

test('README lists every kagenti_webhook_ metric, and names none that does not exist', () => {
  const exported = registry
    .getMetricsAsArray()
    .map((m) => m.name)
    .filter((n) => n.startsWith(PREFIX))
    .map((n) => n.slice(PREFIX.length));
  assert.ok(exported.length >= 13, exported.join(' '));
  const paragraph = section('Metrics (prefix `kagenti_webhook_`)', '\n\n');
  const listed = new Set([...paragraph.matchAll(/`([a-z_]+)(?:\{[^`]*\})?`/g)].map((m) => m[1]!));
  for (const name of exported) assert.ok(listed.has(name), `README's metrics paragraph lacks ${name}`);
  for (const name of listed) if (/_(total|seconds|bytes|info|connections|violations)$/.test(name)) assert.ok(exported.includes(name), `README names ${name}, which is not exported`);
  assert.doesNotMatch(paragraph, /metrics below/, 'no pointer to metrics that do not follow');

  const alerts = section('Alerts worth having', '\n\n`inject` reads');
  const used = [...alerts.matchAll(/\b([a-z_]+?)(?:_bucket)?(?=[{[ ]|\)| -)/g)].map((m) => m[1]!).filter((n) => exported.includes(n));
  for (const name of ['tls_certificate_expiry_timestamp_seconds', 'admission_requests_total', 'tls_handshake_errors_total', 'admission_duration_seconds', 'cluster_cache_age_seconds'])
    assert.ok(used.includes(name), `the alerts use ${name}`);
});
