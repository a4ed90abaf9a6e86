// The start-up warm-up (webhook/warmup.ts): it runs the real admission path before the listener opens, and
// leaves nothing behind that a user could see: no log line, no counted admission, no metric series.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromObject, defaultConfig } from '../webhook/config.ts';
import { registry } from '../webhook/metrics.ts';
import { silentLogger } from '../webhook/log.ts';
import { startValidation } from '../webhook/validation.ts';
import { warmUp, warmUpCorpus } from '../webhook/warmup.ts';
import { answerAdmission } from '../webhook/server.ts';
import { parseServeFlags } from '../webhook/serve.ts';
import { runCli } from './helpers.ts';
import { PATHS, startOnFakeApi, until } from './fake-apiserver.ts';
import type { ValidationService } from '../webhook/validation.ts';

async function admissionSeries(): Promise<number> {
  let n = 0;
  for (const name of [
    'kagenti_webhook_admission_requests_total',
    'kagenti_webhook_admission_duration_seconds',
    'kagenti_webhook_injections_total',
    'kagenti_webhook_injection_skipped_total',
    'kagenti_webhook_rule_violations_total',
  ]) {
    const m = await registry.getSingleMetric(name)!.get();
    n += m.values.filter((v) => v.value !== 0).length;
  }
  return n;
}

test('warmUp runs the requested admissions, writes nothing to stdout and leaves the admission metrics empty', async () => {
  const config = defaultConfig();
  const validation = await startValidation({ config, log: silentLogger(), cluster: 'none', readToken: async () => Promise.reject(new Error('none')) });
  const writes: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    writes.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  let result;
  try {
    result = await warmUp({ config, validation, requests: 600, logLevel: 'info' });
  } finally {
    process.stdout.write = write;
    validation.close();
  }
  assert.equal(result.requests, 600);
  assert.ok(result.ms >= 0);
  assert.deepEqual(
    writes.filter((w) => w.includes('"msg":"admission"')),
    [],
    'warm-up admissions must not reach the log',
  );
  assert.equal(await admissionSeries(), 0, 'warm-up admissions must not be counted');
});

test('the warm-up corpus takes the paths real traffic takes: injections of varied pods, a re-injection, a skip, a denial, validations', async () => {
  const config = defaultConfig();
  const validation = await startValidation({ config, log: silentLogger(), cluster: 'none', readToken: async () => Promise.reject(new Error('none')) });
  try {
    const results = warmUpCorpus(config).map((item) => {
      const answer = answerAdmission(item.webhook, item.body, { config, log: silentLogger(), validation });
      assert.ok(!(answer instanceof Promise), 'the warm-up corpus is answered at once');
      const { status, text } = answer;
      assert.equal(status, 200, text);
      const r = JSON.parse(text).response;
      return `${item.webhook}:${r.allowed ? (r.patch ? 'patched' : 'allowed') : r.status.message.slice(0, r.status.message.indexOf(']') + 1)}`;
    });
    const count = (x: string) => results.filter((r) => r === x).length;
    assert.ok(count('mutate:patched') >= 8, results.join(' '));
    assert.ok(count('mutate:allowed') >= 2, results.join(' ')); // not an agent; already injected
    assert.equal(count('mutate:[host-network]'), 1, results.join(' '));
    assert.ok(results.filter((r) => r.startsWith('validate:')).length >= 5, results.join(' '));
    assert.ok(!results.some((r) => r.includes('internal-error')), results.join(' '));
  } finally {
    validation.close();
  }
});

test('warmUp with 0 requests does nothing; a time budget stops it early', async () => {
  const config = defaultConfig();
  const validation = await startValidation({ config, log: silentLogger(), cluster: 'none', readToken: async () => Promise.reject(new Error('none')) });
  try {
    assert.deepEqual(await warmUp({ config, validation, requests: 0 }), { requests: 0, ms: 0 });
    const r = await warmUp({ config, validation, requests: 1_000_000, budgetMs: 50 });
    assert.ok(r.requests > 0 && r.requests < 1_000_000, `stopped after ${r.requests}`);
  } finally {
    validation.close();
  }
});

test('warmUp counts the admissions that failed and keeps the first message: a handler that throws, or a config the corpus cannot be built with', async () => {
  const config = defaultConfig();
  const real = await startValidation({ config, log: silentLogger(), cluster: 'none', readToken: async () => Promise.reject(new Error('none')) });
  try {
    const ok = await warmUp({ config, validation: real, requests: 100 });
    assert.equal(ok.failed, undefined, 'nothing failed');
    // every /validate admission throws: answered as internal errors, which the warm-up counts
    const throwing: ValidationService = {
      ...real,
      validate: () => {
        throw new Error('boom in validate');
      },
      answer: () => {
        throw new Error('boom in validate');
      },
    };
    const corpus = warmUpCorpus(config);
    const validates = corpus.filter((i) => i.webhook === 'validate').length;
    const r = await warmUp({ config, validation: throwing, requests: corpus.length, logLevel: 'info' });
    assert.equal(r.requests, corpus.length);
    assert.equal(r.failed, validates);
    assert.equal(r.firstError, 'boom in validate');
    // a real service catches its own errors and answers an internal-error denial: the warm-up names the error from
    // that admission's line, not the answer's JSON
    let boom = false;
    const shaky = structuredClone(defaultConfig());
    const policies = shaky.policies;
    Object.defineProperty(shaky, 'policies', {
      get() {
        if (boom) throw new Error('boom inside validation');
        return policies;
      },
    });
    const catching = await startValidation({ config: shaky, log: silentLogger(), cluster: 'none', readToken: async () => Promise.reject(new Error('none')) });
    try {
      boom = true;
      const c = await warmUp({ config, validation: catching, requests: corpus.length, logLevel: 'info' });
      assert.ok((c.failed ?? 0) > 0, 'the internal errors are counted');
      assert.equal(c.firstError, 'boom inside validation');
      // at a level that leaves out the admission lines: the denial's message, not JSON
      const quiet = await warmUp({ config, validation: catching, requests: corpus.length, logLevel: 'warn' });
      assert.match(quiet.firstError ?? '', /^200 \[internal-error\] /);
    } finally {
      boom = false;
      catching.close();
    }
    // a config the injection throws on: the corpus cannot be built, nothing runs, and that is said
    const broken = structuredClone(defaultConfig());
    Object.defineProperty(broken, 'trustDomain', {
      get() {
        throw new Error('no trust domain');
      },
    });
    const b = await warmUp({ config: broken, validation: real, requests: 100 });
    assert.equal(b.requests, 0);
    assert.equal(b.failed, 1);
    assert.match(b.firstError ?? '', /^the warm-up could not run: no trust domain$/);
  } finally {
    real.close();
  }
});

test('the warm-up\'s /validate admissions leave no admitted agents behind: another agent on a warm-up ServiceAccount is not denied after it', async () => {
  const s = await startOnFakeApi((api) => {
    api.seed(PATHS.namespaces, [{ metadata: { name: 'kagenti-webhook-warmup' } }]);
    api.seed(PATHS.csidrivers, [{ metadata: { name: 'csi.spiffe.io' } }]);
  });
  try {
    await until(() => s.svc.readiness().ready, 'first sync');
    const config = configFromObject({ tokenReview: { issuer: 'external' } });
    const w = await warmUp({ config, validation: s.svc, requests: warmUpCorpus(config).length * 2 });
    assert.equal(w.failed, undefined);
    // warm-0 is one of the pods the warm-up validates (ServiceAccount warm-0); a pod of another agent on it
    const other = {
      uid: 'after-warmup',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      operation: 'CREATE' as const,
      namespace: 'kagenti-webhook-warmup',
      name: 'someone-else',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'someone-else', namespace: 'kagenti-webhook-warmup', labels: { 'kagenti.io/type': 'agent' } },
        spec: { serviceAccountName: 'warm-0', containers: [{ name: 'a', image: 'x' }] },
      },
      oldObject: null,
    };
    const d = await s.svc.validate(other);
    assert.equal(d.response.allowed, true, d.response.status?.message);
  } finally {
    await s.close();
  }
});

test('serve --warmup: default 20000, 0 turns it off, anything else is a one-line usage error', () => {
  const base = ['--dev-certs', '/tmp/kw-warmup-certs'];
  const flags = (extra: string[]) => parseServeFlags([...base, ...extra]);
  assert.equal((flags([]) as { warmup: number }).warmup, 20_000);
  assert.equal((flags(['--warmup', '0']) as { warmup: number }).warmup, 0);
  const r = runCli(['serve', ...base, '--warmup', 'lots']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--warmup must be a whole number/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
