// Helm release records are checked in a child process within a time budget (webhook/helm-check.ts): a record
// built to take seconds must not hold up other admissions, and is allowed with a warning when out of time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { defaultConfig, parseConfig } from '../webhook/config.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HelmChecker, stderrReason } from '../webhook/helm-check.ts';
import { encodeReleaseForSecret } from '../webhook/helm-release.ts';
import { createLogger, silentLogger } from '../webhook/log.ts';
import { startValidation } from '../webhook/validation.ts';

import { capturingLogger, joinWarnings, podCreateRequest, startTestServer } from './helpers.ts';
import { until } from './fake-apiserver.ts';

const EKS = 'tokenReview:\n  issuer: https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF\n';

function record(release: string, name = 'big') {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'helm.sh/release.v1',
    metadata: { name: `sh.helm.release.v1.${name}.v1`, namespace: 'team-a', labels: { owner: 'helm', name, status: 'pending-install' } },
    data: { release },
  };
}

/** A release whose manifest is about `mib` MiB of agent Deployments: seconds of linting, a few KiB of gzip. */
function bigRelease(mib: number): string {
  const doc = (i: number) =>
    `---\n# Source: big/templates/d.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d${i}\nspec:\n  template:\n    metadata:\n      labels:\n        kagenti.io/type: agent\n    spec:\n      serviceAccountName: sa-${i}\n      containers:\n      - name: a\n        image: x\n`;
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len < mib * 1024 * 1024; i++) {
    const d = doc(i);
    parts.push(d);
    len += d.length;
  }
  const json = JSON.stringify({ name: 'big', namespace: 'team-a', manifest: parts.join('') });
  return Buffer.from(gzipSync(Buffer.from(json)).toString('base64')).toString('base64');
}

const BAD = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kagent-enterprise-config\n  namespace: kagent\ndata:\n  K8S_TOKEN_REVIEW: true\n`;

function secretReview(obj: ReturnType<typeof record>) {
  return {
    uid: `helm-${obj.metadata.name}`,
    kind: { group: '', version: 'v1', kind: 'Secret' },
    resource: { group: '', version: 'v1', resource: 'secrets' },
    namespace: 'team-a',
    name: obj.metadata.name,
    operation: 'CREATE',
    userInfo: { username: 'someone' },
    object: obj,
  };
}

test('a record that takes seconds to check does not hold up a pod admission, and is allowed with a warning when out of time', async () => {
  const config = parseConfig(EKS);
  // 14 MiB of manifest take about 0.8 s to lint here, plus the child's start: well over a 0.6 s budget, and the
  // pod, sent 50 ms in, has over half a second to be answered first
  const { log, lines } = capturingLogger('debug');
  const validation = await startValidation({ config, log, cluster: 'none', helmCheckMs: 600 });
  const s = await startTestServer(config, validation);
  try {
    const order: string[] = [];
    const helm = s.review('/validate', secretReview(record(bigRelease(14)))).then((r) => {
      order.push('helm');
      return r;
    });
    // the pod goes in while the record is being checked
    await new Promise((r) => setTimeout(r, 50));
    const pod = await s.review('/validate', podCreateRequest({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team-a' }, spec: { containers: [{ name: 'a', image: 'x' }] } }));
    order.push('pod');
    assert.equal(pod.allowed, true);
    const r = await helm;
    assert.deepEqual(order, ['pod', 'helm'], 'the pod was answered while the record was still being checked');
    assert.equal(r.allowed, true);
    assert.ok(r.warnings.every((w: string) => w.length <= 120), JSON.stringify(r.warnings));
    assert.match(joinWarnings(r.warnings), /^\[helm-release-unchecked\] Helm release record team-a\/sh\.helm\.release\.v1\.big\.v1 was not checked: its check took longer than 0\.6 s\./);

    // the stopped child is replaced (a new one starts at once): the next record is checked, and this one is denied.
    // On a loaded machine a child's start alone can take seconds, far over the 0.6 s, so the record is sent once the
    // new child says it is ready: its latest line is its ready line, after the last record that ran out of time. One
    // that still runs out of time (its check alone over 0.6 s) is allowed for that reason, and the next try waits for
    // the child started after it.
    const childReady = () =>
      lines()
        .filter((l) => l.msg === 'Helm release check process ready' || /not checked within its budget/.test(l.msg))
        .at(-1)?.msg === 'Helm release check process ready';
    let bad: any;
    for (let attempt = 0; attempt < 5; attempt++) {
      await until(childReady, 'the new child is ready', 60_000);
      bad = await s.review('/validate', secretReview(record(encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', manifest: BAD }), 'kagent')));
      if (!bad.allowed) break;
      assert.match(joinWarnings(bad.warnings), /was not checked: its check took longer than 0\.6 s\./);
    }
    assert.equal(bad.allowed, false);
    assert.match(bad.status.message, /^\[token-review-value\] ConfigMap kagent\/kagent-enterprise-config \(Helm release kagent\/kagent\)/);
  } finally {
    await s.close();
  }
});

test('records beyond the queue are allowed at once with a warning; closing ends the waiting ones', async () => {
  const checker = new HelmChecker({ config: defaultConfig(), log: silentLogger(), budgetMs: 2000, queue: 1 });
  try {
    const issuer = { classification: 'external' as const };
    const first = checker.check(record(bigRelease(14)), issuer); // running
    const second = checker.check(record(bigRelease(1), 'second'), issuer); // waiting
    const third = await checker.check(record(bigRelease(1), 'third'), issuer); // no room
    assert.equal(third.checked, false);
    assert.match(joinWarnings(third.warnings), /was not checked: 1 other record was waiting to be checked\./);
    await checker.close();
    for (const r of await Promise.all([first, second])) {
      assert.equal(r.checked, false);
      assert.match(joinWarnings(r.warnings), /was not checked: the webhook is shutting down\./);
    }
  } finally {
    await checker.close();
  }
});

test('a record built to need memory ends the child, not the server: allowed with a warning, and the next is checked', async () => {
  // one document of a million tiny objects: a few KiB of gzip
  const manifest = `---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\nx: [${'{a: 1}, '.repeat(1_000_000)}1]\n`;
  const release = Buffer.from(gzipSync(Buffer.from(JSON.stringify({ name: 'm', namespace: 'team-a', manifest }))).toString('base64')).toString('base64');
  const checker = new HelmChecker({ config: parseConfig(EKS), log: silentLogger(), budgetMs: 20_000, heapMb: 16 });
  try {
    const rss = process.memoryUsage().rss;
    const r = await checker.check(record(release, 'm'), { classification: 'external' });
    assert.equal(r.checked, false);
    assert.match(joinWarnings(r.warnings), /was not checked: its check needed more memory than the webhook allows\./);
    assert.ok(process.memoryUsage().rss - rss < 64 * 1024 * 1024, 'the memory was the child\'s');
    const next = await checker.check(record(encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', manifest: BAD }), 'kagent'), { classification: 'external' });
    assert.equal(next.checked, true);
    assert.equal(next.violations.length, 1);
  } finally {
    await checker.close();
  }
});

test('a child that fails says why in the log: the line of its stderr that names the error', async () => {
  // A stand-in worker that fails as a broken install would (a module that cannot be found), after some noise.
  const dir = mkdtempSync(join(tmpdir(), 'helm-worker-'));
  const worker = join(dir, 'worker.mjs');
  writeFileSync(worker, "process.stderr.write('node:internal/modules/run_main:123\\n  noise\\nError: Cannot find module \\'/app/dist/webhook/helm-release.js\\'\\n    at x (y:1:2)\\n'); process.exit(1);\n");
  const lines: string[] = [];
  const log = createLogger('info', { write: (l: string) => (lines.push(l), true) });
  const checker = new HelmChecker({ config: defaultConfig(), log, workerUrl: pathToFileURL(worker) });
  try {
    const r = await checker.check(record(encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', manifest: BAD }), 'kagent'), { classification: 'external' });
    assert.equal(r.checked, false);
    assert.match(joinWarnings(r.warnings), /was not checked: its check failed\./);
    await new Promise((res) => setTimeout(res, 50)); // pino's stream
    const line = lines.map((l) => JSON.parse(l)).find((l) => /ended its process/.test(l.msg));
    assert.ok(line, lines.join(''));
    assert.equal(line.code, 1);
    assert.equal(line.stderr, "Error: Cannot find module '/app/dist/webhook/helm-release.js'");
  } finally {
    await checker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stderrReason: the first line naming an error, else the last line, at most 300 characters', () => {
  assert.equal(stderrReason('a\n\nTypeError: x is not a function\n  at y\nRangeError: z\n'), 'TypeError: x is not a function');
  assert.equal(stderrReason('\n\nFATAL ERROR: Reached heap limit\n'), 'FATAL ERROR: Reached heap limit');
  assert.equal(stderrReason('first\r\nlast\r\n\n'), 'last');
  assert.equal(stderrReason('\n \n'), undefined);
  assert.equal(stderrReason('x'.repeat(1000))!.length, 300);
});

test('a checked record gets the same result from the child as from the check itself', async () => {
  // a budget far over the shipped 3 s: this test compares results, and on a busy machine the child's start alone
  // can take the 3 s
  const checker = new HelmChecker({ config: parseConfig(EKS), log: silentLogger(), budgetMs: 120_000 });
  try {
    const r = await checker.check(record(encodeReleaseForSecret({ name: 'kagent', namespace: 'kagent', manifest: BAD }), 'kagent'), { classification: 'external' });
    assert.equal(r.checked, true);
    assert.deepEqual(
      r.violations.map((v) => [v.rule, v.severity, v.path]),
      [['token-review-value', 'error', 'data.K8S_TOKEN_REVIEW']],
    );
  } finally {
    await checker.close();
  }
});

test('a record that waited for others is told so when its budget runs out, not that its check was slow', async () => {
  const checker = new HelmChecker({ config: defaultConfig(), log: silentLogger(), budgetMs: 500 });
  try {
    const issuer = { classification: 'external' as const };
    const [a, b] = [record(bigRelease(14)), record(bigRelease(14), 'second')];
    const [first, second] = await Promise.all([checker.check(a, issuer), checker.check(b, issuer)]);
    assert.match(joinWarnings(first.warnings), /was not checked: its check took longer than 0\.5 s\./);
    // the second waited (nearly) the first's whole budget, or longer when the timer fired late on a busy machine: too
    // little was left to start a check, so it never ran
    const waited = /was not checked: it waited (\d+\.\d) s for other records\./.exec(joinWarnings(second.warnings));
    assert.ok(waited, joinWarnings(second.warnings));
    assert.ok(Number(waited[1]) >= 0.4, waited[0]);
  } finally {
    await checker.close();
  }
});
