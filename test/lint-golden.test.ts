// Golden tests of every output format on realistic renders: a kagent-like chart render (the ConfigMap with a
// boolean), the ConfigMap in each bad form, an agents chart with shared and default ServiceAccounts,
// `kubectl kustomize` output, and a chart whose tools reuse its agent's ServiceAccount. Regenerate after an intended
// change with:
//   UPDATE_GOLDEN=1 node --test test/lint-golden.test.ts
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { ROOT, runCli } from './fixtures/lint/cli.ts';

const GOLDEN = `${ROOT}test/fixtures/lint/golden/`;
const EKS = 'https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF';

const CASES: { name: string; args: string[]; exit: number }[] = [
  { name: 'kagent-render', args: ['test/fixtures/lint/kagent-render.yaml', '--external-issuer', '-n', 'kagent'], exit: 1 },
  { name: 'kagent-variants', args: ['test/fixtures/lint/kagent-variants.yaml'], exit: 1 },
  { name: 'agents-render', args: ['test/fixtures/lint/agents-render.yaml', '--namespace', 'agents'], exit: 1 },
  { name: 'kustomize-output', args: ['test/fixtures/lint/kustomize-output.yaml', '--issuer', EKS], exit: 1 },
  { name: 'tools-render', args: ['test/fixtures/lint/tools-render.yaml', '--namespace', 'weather', '--external-issuer'], exit: 0 },
];
const FORMATS = ['text', 'json', 'sarif', 'junit'] as const;
const EXT = { text: 'txt', json: 'json', sarif: 'sarif', junit: 'xml' } as const;

describe('golden outputs', { concurrency: 4 }, () => {
for (const c of CASES)
  for (const format of FORMATS)
    test(`golden: ${c.name} as ${format}`, async () => {
      // SARIF URIs relative to the repository (the working directory), wherever a CI's GITHUB_WORKSPACE is
      const r = await runCli([...c.args, '--format', format], { env: { GITHUB_WORKSPACE: '' } });
      assert.equal(r.stderr, '');
      assert.equal(r.code, c.exit);
      const file = `${GOLDEN}${c.name}.${EXT[format]}`;
      const got = r.stdout.toString('utf8');
      if (process.env.UPDATE_GOLDEN || !existsSync(file)) {
        if (!process.env.UPDATE_GOLDEN) assert.fail(`missing golden ${file}: run UPDATE_GOLDEN=1 node --test test/lint-golden.test.ts`);
        writeFileSync(file, got);
      }
      assert.equal(got, readFileSync(file, 'utf8'));
      if (format === 'json' || format === 'sarif') JSON.parse(got);
    });
});

test('golden: the kagent-variants golden covers every bad form of the ConfigMap', () => {
  const json = JSON.parse(readFileSync(`${GOLDEN}kagent-variants.json`, 'utf8'));
  const byNs = Object.fromEntries(json.violations.map((v: { namespace: string; rule: string }) => [v.namespace, v.rule]));
  assert.deepEqual(byNs, {
    'env-yes': 'token-review-value',
    'env-on': 'token-review-value',
    'env-number': 'token-review-value',
    'env-null': 'token-review-value',
    'env-capital': 'token-review-value',
    'env-binary': 'token-review-value',
    'env-missing': 'token-review-required',
    'env-false': 'token-review-required',
  });
});
