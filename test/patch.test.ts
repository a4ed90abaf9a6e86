// The JSON patch leaves the pod's own items alone: an item the injected pod shares with the pod that came is never
// sent back, since the API server applies the patch to the object as it holds it, while the webhook only has its
// values as JSON.parse read them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastJsonPatch from 'fast-json-patch';
import { defaultConfig } from '../webhook/config.ts';
import { injectTemplate, jsonEqual } from '../webhook/inject.ts';
import { createPatch, escapeSegment } from '../webhook/patch.ts';
import { podCreateRequest, startTestServer } from './helpers.ts';

const ctx = { namespace: 'team-a', ref: 'Pod team-a/p' };

test('escapeSegment writes a JSON Pointer segment as RFC 6901 says: ~ as ~0 first, then / as ~1, every occurrence', () => {
  for (const [raw, escaped] of [
    ['kagenti.io', 'kagenti.io'],
    ['', ''],
    ['a~b', 'a~0b'],
    ['a/b', 'a~1b'],
    ['~/', '~0~1'],
    ['/~', '~1~0'],
    // ~ is escaped before /: the ~ of the ~1 written for a / is never escaped again (not ~01), while a key's own ~1 becomes ~01
    ['/', '~1'],
    ['~1', '~01'],
    ['~0', '~00'],
    // every occurrence, not the first only
    ['kagenti.io/authbridge-status', 'kagenti.io~1authbridge-status'],
    ['a/b/c~d~e', 'a~1b~1c~0d~0e'],
  ]) assert.equal(escapeSegment(raw!), escaped, JSON.stringify(raw));
  // what it writes, a JSON patch reads back as the key it came from
  const obj = { metadata: { annotations: { 'x/~1~y': 'old' } } };
  const path = `/metadata/annotations/${escapeSegment('x/~1~y')}`;
  const out = fastJsonPatch.applyPatch(structuredClone(obj), [{ op: 'replace', path, value: 'new' }]).newDocument;
  assert.deepEqual(out, { metadata: { annotations: { 'x/~1~y': 'new' } } });
});

test("a pod's own integer past 2^53 is never sent back rounded: its container is not in the patch (HTTPS, kubectl)", async () => {
  // JSON.parse of the body already rounds 9007199254740993, so the only way to keep it is never to re-send the item
  // that holds it: the patch must leave the user's container alone while it replaces the stale spiffe-helper.
  const big = '9007199254740993';
  const status = JSON.stringify(JSON.stringify({ containers: ['spiffe-helper'] }));
  const podText = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team-a","labels":{"kagenti.io/type":"agent"},"annotations":{"kagenti.io/authbridge-status":${status}}},"spec":{"containers":[{"name":"app","image":"b:1","securityContext":{"runAsUser":${big}},"livenessProbe":{"exec":{"command":["true"]},"terminationGracePeriodSeconds":${big}}},{"name":"spiffe-helper","image":"ghcr.io/spiffe/spiffe-helper:0.9"}]}}`;
  const body = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":${JSON.stringify(podCreateRequest({ metadata: { name: 'p' } }, 'team-a')).replace('"object":{"metadata":{"name":"p"}}', `"object":${podText}`)}}`;
  assert.ok(body.includes(big));
  const server = await startTestServer(defaultConfig());
  try {
    const r = await server.post('/mutate', body);
    assert.equal(r.status, 200);
    assert.equal(r.body.response.allowed, true);
    const patchText = Buffer.from(r.body.response.patch, 'base64').toString('utf8');
    assert.doesNotMatch(patchText, /900719925474099\d/);
    assert.doesNotMatch(patchText, /"name":"app"/);
    // the real patch library applied to the pod as sent keeps the user's integer
    const dir = mkdtempSync(join(tmpdir(), 'kw-bigint-'));
    try {
      writeFileSync(join(dir, 'pod.json'), podText);
      writeFileSync(join(dir, 'patch.json'), patchText);
      const out = execFileSync('kubectl', ['patch', '--local', '-f', join(dir, 'pod.json'), '--type', 'json', '--patch-file', join(dir, 'patch.json'), '-o', 'json'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      assert.equal(out.match(/9007199254740993/g)?.length, 2, out);
      const want = injectTemplate(JSON.parse(podText), defaultConfig(), ctx);
      assert.ok(want.outcome === 'inject' && jsonEqual(JSON.parse(out), want.template));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await server.close();
  }
});

test('the pod’s own containers between removed and inserted ones are not sent again (nor is the list replaced)', () => {
  const own = [1, 2, 3, 4].map((n) => ({ name: `app${n}`, image: `a:${n}` }));
  const stale = (name: string) => ({ name, image: 'old' });
  const fresh = (name: string) => ({ name, image: 'new' });
  // injection took out two stale sidecars around app1 and put the new ones first
  const before = { spec: { containers: [stale('spiffe-helper'), own[0], stale('authbridge-proxy'), own[1], own[2], own[3]] } };
  const after = { spec: { containers: [fresh('spiffe-helper'), fresh('authbridge-proxy'), ...own] } };
  const ops = createPatch(before, after);
  assert.deepEqual(
    ops.map((o) => [o.op, o.path]),
    [
      ['remove', '/spec/containers/2'],
      ['remove', '/spec/containers/0'],
      ['add', '/spec/containers/0'],
      ['add', '/spec/containers/1'],
    ],
  );
  assert.ok(jsonEqual(fastJsonPatch.applyPatch(structuredClone(before), ops, true, true).newDocument, after));
  // a pod whose only own container sits after a sidecar that goes: the list was replaced whole
  const one = { spec: { containers: [stale('spiffe-helper'), own[0]] } };
  const ops1 = createPatch(one, { spec: { containers: [fresh('spiffe-helper'), fresh('authbridge-proxy'), own[0]] } });
  assert.ok(!JSON.stringify(ops1).includes('app1'), JSON.stringify(ops1));
});
