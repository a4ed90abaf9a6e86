// Golden files: every input in test/golden/ runs through BOTH the HTTPS webhook (/mutate, with the patch
// applied by the real `kubectl patch --local`) and the `inject` command, and both must match the expected
// file beside it (`<case>.golden`). A missing or stale expected file fails.
// Regenerate after an intended change: `npm run golden:update` (then review the diff).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../webhook/admission.ts';
import type { Config } from '../webhook/config.ts';
import { loadConfig } from '../webhook/config.ts';
import { getPodTemplate } from '../webhook/workloads.ts';
import type { TestServer } from './helpers.ts';
import { apiServerDefaults, decodePatch, kubectlPatch, podCreateRequest, podOfWorkload, podProblems, ROOT, runCli, startTestServer } from './helpers.ts';
import { KUBECTL_YAML } from '../webhook/kubectl-yaml.ts';

const DIR = join(ROOT, 'test', 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const DENIED = '# denied\n';

const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml') && !f.endsWith('.config.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length))
  .sort();

function configFile(name: string): string | undefined {
  const f = join(DIR, `${name}.config.yaml`);
  return existsSync(f) ? f : undefined;
}

/** The documents of a stream, Lists flattened, empty documents dropped. */
function objects(text: string): KubeObject[] {
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(text, KUBECTL_YAML) as any[]) {
    const js = doc.toJS();
    if (js === null || js === undefined) continue;
    if (typeof js.kind === 'string' && js.kind.endsWith('List') && Array.isArray(js.items)) out.push(...js.items);
    else out.push(js);
  }
  return out;
}

/**
 * The Pod the API server would see for an object: itself, or a pod made from a workload's template. A StatefulSet's
 * pod gets a persistentVolumeClaim volume for each of its volumeClaimTemplates, in place of a template volume of the
 * same name, as the StatefulSet controller makes it (its updateStorage: the claims first, then the template's other
 * volumes; pod ordinal 0).
 */

function injectViaCli(name: string): string {
  const cfg = configFile(name);
  const r = runCli(['inject', '-f', join(DIR, `${name}.yaml`), ...(cfg ? ['--config', cfg] : [])]);
  if (r.code === 0) return r.stdout;
  if (r.code === 1) return DENIED + r.stderr;
  throw new Error(`inject exited ${r.code}: ${r.stderr}`);
}

const servers = new Map<string, TestServer>();
async function serverFor(name: string): Promise<TestServer> {
  const key = configFile(name) ?? '';
  let s = servers.get(key);
  if (!s) {
    const cfg: Config = loadConfig(key || undefined);
    s = await startTestServer(cfg);
    servers.set(key, s);
  }
  return s;
}

describe('golden files: webhook and inject command agree', () => {
  before(() => {
    assert.ok(cases.length >= 30, `expected the golden corpus, found ${cases.length} cases`);
  });
  after(async () => {
    for (const s of servers.values()) await s.close();
  });

  for (const name of cases) {
    test(name, async () => {
      const inputText = readFileSync(join(DIR, `${name}.yaml`), 'utf8');
      const goldenFile = join(DIR, `${name}.golden`);
      const actual = injectViaCli(name);
      if (UPDATE) writeFileSync(goldenFile, actual);
      assert.ok(existsSync(goldenFile), `missing ${name}.golden: run \`npm run golden:update\` and review it`);
      const expected = readFileSync(goldenFile, 'utf8');
      assert.equal(actual, expected, `inject output for ${name} differs from ${name}.golden (stale? run \`npm run golden:update\`)`);

      // The webhook path: each pod the API server would see goes through HTTPS /mutate.
      const server = await serverFor(name);
      const inputs = objects(inputText);
      const denials: string[] = [];
      const mutated: (KubeObject | null)[] = [];
      for (const obj of inputs) {
        const pod = podOfWorkload(obj);
        if (!pod) {
          mutated.push(null);
          continue;
        }
        const res = await server.review('/mutate', podCreateRequest(pod, pod.metadata?.namespace ?? 'default'));
        if (!res.allowed) {
          assert.equal(res.status.code, 403);
          assert.equal(res.status.reason, 'Forbidden');
          // one line per denial: a pod with several problems gets them all in one answer
          denials.push(...res.status.message.split('\n'));
          mutated.push(null);
          continue;
        }
        const patch = decodePatch(res);
        if (res.patch) assert.equal(res.patchType, 'JSONPatch');
        const out = patch.length ? kubectlPatch(pod, patch) : pod;
        assert.deepEqual(podProblems(out), [], `${name}: injected pod is not valid`);
        // Re-invocation (reinvocationPolicy: IfNeeded) on the injected pod, as the API server defaulted it after
        // our patch, is a no-op.
        if (patch.length) {
          const defaulted = apiServerDefaults(out);
          const again = await server.review('/mutate', podCreateRequest(defaulted, out.metadata?.namespace ?? 'default'));
          assert.equal(again.allowed, true);
          assert.equal(again.patch, undefined, `${name}: second injection must not patch`);
        }
        mutated.push(out);
      }

      if (expected.startsWith(DENIED)) {
        const messages = expected.slice(DENIED.length).trim().split('\n');
        assert.deepEqual(denials, messages, `${name}: webhook denial differs from the inject command's`);
        return;
      }
      assert.deepEqual(denials, [], `${name}: the webhook denied what inject accepted`);
      const outputs = objects(expected);
      assert.equal(outputs.length, inputs.length, `${name}: document count changed`);
      for (let i = 0; i < inputs.length; i++) {
        const want = podOfWorkload(outputs[i]);
        if (!want || !mutated[i]) {
          if (!podOfWorkload(inputs[i])) assert.deepEqual(outputs[i], inputs[i], `${name}: a non-workload document changed`);
          continue;
        }
        assert.deepEqual(mutated[i], want, `${name}: document ${i + 1}: webhook result differs from inject output`);
      }
    });
  }
});
