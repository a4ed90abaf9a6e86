// manifests/preflight.sh, run by `make deploy` before anything is applied: it refuses clusters that would drop
// the webhooks' matchConditions. There is no API server here: a stand-in `kubectl` prints what
// `kubectl version -o json` prints (server part as the API server reports it, e.g. EKS's "30+").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.ts';

function preflight(server: { major: string; minor: string } | null): { code: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'preflight-'));
  try {
    const client = { major: '1', minor: '32', gitVersion: 'v1.32.4' };
    const out = server ? { clientVersion: client, serverVersion: { ...server, gitVersion: `v${server.major}.${server.minor}` } } : { clientVersion: client };
    const kubectl = join(dir, 'kubectl');
    // unreachable: kubectl prints the client part and exits 1
    writeFileSync(kubectl, `#!/usr/bin/env bash\ncat <<'JSON'\n${JSON.stringify(out, null, 2)}\nJSON\nexit ${server ? 0 : 1}\n`);
    chmodSync(kubectl, 0o755);
    const r = spawnSync('bash', [join(ROOT, 'manifests/preflight.sh')], { env: { ...process.env, KUBECTL: kubectl }, encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('preflight: 1.30 and later (EKS writes "30+") pass', () => {
  for (const minor of ['30', '30+', '33']) {
    const r = preflight({ major: '1', minor });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^preflight: Kubernetes 1\.3\d: ok\n$/);
  }
});

test('preflight: 1.28 and 1.29 pass with a note on the beta feature gate', () => {
  const r = preflight({ major: '1', minor: '29+' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /matchConditions are beta here \(feature gate AdmissionWebhookMatchConditions/);
});

test('preflight: before 1.28 nothing is applied, and the line says why', () => {
  const r = preflight({ major: '1', minor: '27' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^preflight: Kubernetes 1\.27 is too old: the webhooks need matchConditions .* Nothing was applied\.\n$/);
});

test('preflight: an unreachable cluster stops with exit 2', () => {
  const r = preflight(null);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /could not read the cluster's version/);
});

test('make deploy runs the preflight before it applies anything', async () => {
  const { readFileSync } = await import('node:fs');
  const make = readFileSync(join(ROOT, 'Makefile'), 'utf8');
  const deploy = make.slice(make.indexOf('\ndeploy:'));
  const body = deploy.slice(0, deploy.indexOf('\n\n'));
  assert.ok(body.indexOf('manifests/preflight.sh') > 0 && body.indexOf('manifests/preflight.sh') < body.indexOf('apply -f -'), body);
});
