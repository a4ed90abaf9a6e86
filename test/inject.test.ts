// The injection core is pure: it never writes to its input (checked by deep-freezing every input: a write to a
// frozen object throws in module code), and the same input gives the same output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../webhook/admission.ts';
import { defaultConfig, parseConfig } from '../webhook/config.ts';
import { injectTemplate, jsonEqual } from '../webhook/inject.ts';
import { getPodTemplate, podSpecFieldPath } from '../webhook/workloads.ts';
import { ROOT } from './helpers.ts';
import { KUBECTL_YAML } from '../webhook/kubectl-yaml.ts';

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

const DIR = join(ROOT, 'test', 'golden');
const inputs: [string, KubeObject][] = [];
for (const f of readdirSync(DIR).filter((n) => n.endsWith('.yaml') && !n.endsWith('.config.yaml')).sort())
  for (const doc of parseAllDocuments(readFileSync(join(DIR, f), 'utf8'), KUBECTL_YAML) as any[]) {
    const js = doc.toJS();
    if (!js) continue;
    for (const o of js.kind === 'List' ? js.items : [js]) if (getPodTemplate(o)) inputs.push([f, o]);
  }

const configs = [defaultConfig(), parseConfig('featureGates:\n  nativeSidecars: true\n  injectTools: true\nspiffeHelper:\n  configMap: helper\n')];

test('injection never writes to its input and is deterministic', () => {
  assert.ok(inputs.length >= 30);
  let injected = 0;
  for (const cfg of configs)
    for (const [file, obj] of inputs) {
      const before = structuredClone(obj);
      const frozen = deepFreeze(structuredClone(obj));
      const tpl = getPodTemplate(frozen)!;
      const ctx = { namespace: 'team-a', ref: `${file}` };
      const a = injectTemplate(tpl.template, cfg, ctx, podSpecFieldPath(frozen.kind));
      const b = injectTemplate(tpl.template, cfg, ctx, podSpecFieldPath(frozen.kind));
      assert.deepEqual(frozen, before, `${file}: input changed`);
      assert.ok(jsonEqual(a, b), `${file}: two runs differ`);
      if (a.outcome === 'inject') {
        injected++;
        // injecting the result again changes nothing (idempotent)
        const again = injectTemplate(deepFreeze(a.template), cfg, ctx, podSpecFieldPath(frozen.kind));
        assert.equal(again.outcome, 'inject');
        if (again.outcome === 'inject') assert.ok(jsonEqual(again.template, a.template), `${file}: second injection differs`);
      }
    }
  assert.ok(injected >= 40, `only ${injected} injections`);
});
