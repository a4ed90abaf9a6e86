// parseReviewBody: JSON.parse of an AdmissionReview body without building request.object.metadata.managedFields.
// The contract every test checks: the result is JSON.parse(body) with that one member removed (or JSON.parse(body)
// itself, when the body is laid out in a way the scan does not follow), and a body JSON.parse rejects is rejected
// with JSON.parse's own error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { FIXTURES, withManagedFields, wrap } from '../bench/fixtures.ts';
import { reviewJson } from '../webhook/admission.ts';
import { defaultConfig } from '../webhook/config.ts';
import { KUBECTL_YAML } from '../webhook/kubectl-yaml.ts';
import { silentLogger } from '../webhook/log.ts';
import { mutate } from '../webhook/mutate.ts';
import { internals, parseReviewBody } from '../webhook/review-body.ts';
import { answerAdmission } from '../webhook/server.ts';
import type { Answer } from '../webhook/server.ts';
import { startValidation } from '../webhook/validation.ts';
import { ROOT } from './helpers.ts';

function hasOwnPath(v: any, path: string[]): boolean {
  for (const k of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) return false;
    v = v[k];
  }
  return true;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: string };
function attempt(f: () => unknown): Outcome {
  try {
    return { ok: true, value: f() };
  } catch (err) {
    return { ok: false, error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

const WHICH = ['object', 'oldObject'] as const;
type Left = Record<(typeof WHICH)[number], boolean>;

/**
 * Checks the contract for one body: parseReviewBody gives what JSON.parse gives (or its error), minus
 * request.object's and request.oldObject's managedFields where they were left out. Returns which were.
 */
function check(text: string | Buffer): Left {
  const body = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  const ours = attempt(() => parseReviewBody(body));
  const theirs = attempt(() => JSON.parse(body.toString('utf8')));
  const left: Left = { object: false, oldObject: false };
  if (!theirs.ok) {
    assert.deepEqual(ours, theirs, 'a body JSON.parse rejects must be rejected with its error');
    return left;
  }
  assert.ok(ours.ok, `JSON.parse accepts the body, parseReviewBody threw ${(ours as { error: string }).error}`);
  const want: any = theirs.value;
  for (const which of WHICH) {
    const path = ['request', which, 'metadata', 'managedFields'];
    if (hasOwnPath(want, path) && !hasOwnPath(ours.value, path)) {
      left[which] = true;
      delete want.request[which].metadata.managedFields;
    }
  }
  assert.deepStrictEqual(ours.value, want);
  for (const marker of Object.values(internals.MARKERS))
    if (!body.includes(marker)) assert.ok(!JSON.stringify(ours.value).includes(marker), 'a marker leaked into the result');
  return left;
}

function review(metadata: string, rest = ''): string {
  return `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":${metadata},"spec":{"containers":[{"name":"app","image":"busybox"}]}}${rest}}}`;
}

const MF = '[{"manager":"kubectl","operation":"Update","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"k:{\\"name\\":\\"app\\"}":{".":{},"f:image":{}}}}}]';

test('the benchmark fixtures parse to JSON.parse minus managedFields', () => {
  for (const f of FIXTURES) {
    const body = Buffer.from(JSON.stringify(f.review('uid-1')));
    assert.ok(internals.spans(body).object, `${f.name}: the scan finds managedFields`);
    assert.deepEqual(check(body), { object: true, oldObject: false }, `${f.name}: managedFields left out`);
    assert.deepEqual(check(JSON.stringify(JSON.parse(body.toString()), null, 2)), { object: true, oldObject: false }, `${f.name}, indented: managedFields left out`);
  }
});

test('managedFields first, in the middle, last or alone in metadata; other whitespace; other value types', () => {
  const cases = [
    `{"managedFields":${MF},"name":"p","labels":{"app":"a"}}`,
    `{"name":"p","managedFields":${MF},"labels":{"app":"a"}}`,
    `{"name":"p","labels":{"app":"a"},"managedFields":${MF}}`,
    `{"managedFields":${MF}}`,
    `{ "name" : "p" ,\n\t"managedFields"\r\n:\n ${MF} \n, "labels" : { } }`,
    `{"name":"p","managedFields":null}`,
    `{"name":"p","managedFields":"text with \\"quotes\\" and \\u00e9 and \\\\"}`,
    `{"name":"p","managedFields":-12.5e+3}`,
    `{"name":"p","managedFields":[[],{},[{}],true,false,null,0,-0,1E9,"é ☃ 𝄞"]}`,
  ];
  for (const metadata of cases) assert.equal(check(review(metadata)).object, true, metadata);
  assert.equal(check(`  \n${review(`{"managedFields":${MF}}`)}\n  `).object, true, 'whitespace around the body');
});

test('bodies the scan does not follow are parsed whole, with the same result as JSON.parse', () => {
  const cases: [string, string][] = [
    ['no managedFields', review('{"name":"p"}')],
    ['key written with an escape', review(`{"name":"p","managed\\u0046ields":${MF}}`)],
    ['managedFields twice: JSON.parse keeps the last', review(`{"managedFields":${MF},"name":"p","managedFields":[1]}`)],
    ['metadata twice', review(`{"managedFields":${MF}},"metadata":{"name":"second","managedFields":[2]}`)],
    ['object twice', review(`{"managedFields":${MF}}`).replace('"operation":"CREATE",', '"operation":"CREATE","object":{"metadata":{"managedFields":[0]}},')],
    ['request.object is an array', `${review(`{"managedFields":${MF}}`).replace('"object":{', '"object":[{').slice(0, -2)}]}}`],
    ['request.object.metadata is an array', review(`[{"managedFields":${MF}}]`)],
    ['managedFields under oldObject only', review('{"name":"p"}', `,"oldObject":{"metadata":{"managedFields":${MF}}}`)],
    ['managedFields elsewhere in the pod', review('{"name":"p"}').replace('"image":"busybox"', `"image":"busybox","managedFields":${MF}`)],
    ['a top-level array', `[${review(`{"managedFields":${MF}}`)}]`],
    ['managedFields deeper than the grammar check follows', review(`{"managedFields":${'['.repeat(1100)}${']'.repeat(1100)}}`)],
  ];
  for (const [what, text] of cases) {
    assert.doesNotThrow(() => JSON.parse(text), what); // each case is valid JSON
    check(text);
    if (what.startsWith('no ') || what.includes('escape') || what.includes('oldObject') || what.includes('elsewhere') || what.includes('array') || what.includes('deeper'))
      assert.deepStrictEqual(parseReviewBody(Buffer.from(text)), JSON.parse(text), what);
  }
  // Duplicate keys: the result is still JSON.parse's (last one wins), with that member removed.
  const twice = review(`{"managedFields":${MF},"name":"p","managedFields":[1]}`);
  assert.deepStrictEqual(parseReviewBody(Buffer.from(twice)), JSON.parse(twice));
});

test('a malformed managedFields value gets JSON.parse\'s own error, never a result', () => {
  const bad = ['[1,]', '{"a" 1}', '{"a":1,}', '"\u0001"', 'tru', 'nul', '01', '1.', '-', '1e', '+1', '"\\x"', '"\\u12G4"', '[', '{"a":[}]', '"unterminated', '[1 2]', '.5', 'NaN', "'s'", '[1}', '{"a":1]', '[{"a":[1}]]', '"tab\there"', '"\u001f"', '"\u0010"'];
  for (const value of bad) {
    const text = review(`{"name":"p","managedFields":${value},"labels":{}}`);
    assert.throws(() => JSON.parse(text), SyntaxError, value);
    check(text);
  }
  // Malformed text before or after managedFields too.
  check(review(`{"name":"p" "managedFields":${MF}}`));
  check(review(`{"name":"p","managedFields":${MF}}`).replace('"operation":"CREATE"', '"operation":CREATE'));
  check(`${review(`{"managedFields":${MF}}`)} trailing`);
  check(`\ufeff${review(`{"managedFields":${MF}}`)}`);
  check('');
  check('   ');
});

test('a body that plants the marker itself cannot make the scan replace the wrong value', () => {
  // The marker carries a per-process nonce no sender sees; even a sender that knew it only gets the member removed.
  const m = JSON.stringify(internals.MARKERS.object);
  check(review(`{"name":${m},"managedFields":${MF}}`));
  check(review(`{"managedFields":${MF},"managedFields":${m}}`));
  check(review(`{"managedFields":${m}}`));
});

// ---------- UPDATE: the old object's managedFields too ----------

interface Layout {
  /** where `operation` goes among request's members (default before the objects, as the API server writes it) */
  operation?: 'before' | 'between' | 'after' | 'none';
  /** its value (default UPDATE) */
  op?: string;
  oldFirst?: boolean;
}

function updateReview(metadata: string, oldMetadata: string, layout: Layout = {}): string {
  const obj = `"object":{"apiVersion":"v1","kind":"ConfigMap","metadata":${metadata},"data":{"a":"1"}}`;
  const old = `"oldObject":{"apiVersion":"v1","kind":"ConfigMap","metadata":${oldMetadata},"data":{"a":"0"}}`;
  const members = layout.oldFirst ? [old, obj] : [obj, old];
  const op = `"operation":${JSON.stringify(layout.op ?? 'UPDATE')}`;
  const where = layout.operation ?? 'before';
  if (where === 'before') members.unshift(op);
  else if (where === 'between') members.splice(1, 0, op);
  else if (where === 'after') members.push(op);
  return `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"ConfigMap"},${members.join(',')},"dryRun":false}}`;
}

const WITH_MF = `{"name":"c","managedFields":${MF},"labels":{"a":"b"}}`;
const both = { object: true, oldObject: true };
const objectOnly = { object: true, oldObject: false };

test('an UPDATE leaves out the old object\'s managedFields too', () => {
  for (const f of FIXTURES) {
    const r: any = f.review('uid-u');
    r.request.operation = 'UPDATE';
    r.request.oldObject = structuredClone(r.request.object);
    const body = Buffer.from(JSON.stringify(r));
    const spans = internals.spans(body);
    assert.ok(spans.object && spans.oldObject && spans.object[1] < spans.oldObject[0], `${f.name}: the scan finds both, in order`);
    assert.deepEqual(check(body), both, f.name);
    assert.deepEqual(check(JSON.stringify(r, null, 2)), both, `${f.name}, indented`);
  }
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF)), both);
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF, { oldFirst: true })), both, 'oldObject before object');
  assert.deepEqual(check(updateReview('{"name":"c"}', WITH_MF)), { object: false, oldObject: true }, 'only the old object has them');
  assert.deepEqual(check(updateReview(WITH_MF, '{"name":"c"}')), objectOnly, 'only the object has them');
  assert.deepEqual(check(updateReview('{"name":"c"}', '{"name":"c"}')), { object: false, oldObject: false });
});

test('the old object\'s managedFields are parsed when the scan cannot tell the request is an UPDATE', () => {
  // The scan reads `operation` only where the API server writes it, before the objects.
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF, { operation: 'after' })), objectOnly, 'operation after both');
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF, { operation: 'between' })), objectOnly, 'operation between them');
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF, { operation: 'between', oldFirst: true })), objectOnly, 'oldObject, operation, object');
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF, { operation: 'none' })), objectOnly, 'no operation');
  for (const op of ['CREATE', 'DELETE', 'update', 'UPDATE ', 'UPDATED', 'UPDAT'])
    assert.deepEqual(check(updateReview(WITH_MF, WITH_MF, { op })), objectOnly, `operation ${op}`);
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF).replace('"operation":"UPDATE"', '"operation":["UPDATE"]')), objectOnly, 'operation not a string');
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF).replace('"operation":"UPDATE"', '"oper\\u0061tion":"UPDATE"')), objectOnly, 'operation written with an escape');
  // A DELETE has a null object and the old one: nothing is left out.
  assert.deepEqual(check(updateReview(WITH_MF, WITH_MF, { op: 'DELETE' }).replace(/"object":\{.*?\}\},"oldObject"/, '"object":null,"oldObject"')), { object: false, oldObject: false });
});

test('UPDATE bodies the scan does not follow are parsed whole, with the same result as JSON.parse', () => {
  const cases: [string, string][] = [
    ['oldObject twice', updateReview(WITH_MF, WITH_MF).replace('"dryRun"', `"oldObject":{"metadata":{"managedFields":[9]}},"dryRun"`)],
    ['old metadata twice', updateReview(WITH_MF, `{"managedFields":${MF}},"metadata":{"name":"second","managedFields":[2]}`)],
    ['old managedFields twice', updateReview(WITH_MF, `{"managedFields":${MF},"managedFields":[1]}`)],
    ['object twice, the second after oldObject', updateReview(WITH_MF, WITH_MF).replace('"dryRun"', `"object":{"metadata":{"managedFields":[7]}},"dryRun"`)],
    ['oldObject is null', updateReview(WITH_MF, 'null').replace('"oldObject":{"apiVersion":"v1","kind":"ConfigMap","metadata":null,"data":{"a":"0"}}', '"oldObject":null')],
    ['oldObject is an array', updateReview(WITH_MF, WITH_MF).replace('"oldObject":{', '"oldObject":[{').replace(',"dryRun"', '],"dryRun"')],
    ['old metadata is an array', updateReview(WITH_MF, `[${WITH_MF}]`)],
    ['old managedFields deeper than the grammar check follows', updateReview(WITH_MF, `{"managedFields":${'['.repeat(1100)}${']'.repeat(1100)}}`)],
    ['the object deeper than the grammar check follows after its managedFields', updateReview(`{"managedFields":${MF},"x":${'['.repeat(1100)}${']'.repeat(1100)}}`, WITH_MF)],
  ];
  for (const [what, text] of cases) {
    assert.doesNotThrow(() => JSON.parse(text), what); // each case is valid JSON
    const left = check(text);
    // The scan gives up inside the object, after its managedFields: those are left out, the old object's are not.
    if (what.includes('deeper than the grammar check follows after')) assert.deepEqual(left, objectOnly, what);
  }
  // Malformed text in or after the old object: JSON.parse's own error.
  for (const bad of ['[1,]', '{"a" 1}', 'tru', '"\\x"', '[1}']) {
    const text = updateReview(WITH_MF, `{"name":"c","managedFields":${bad}}`);
    assert.throws(() => JSON.parse(text), SyntaxError, bad);
    check(text);
  }
  check(updateReview(WITH_MF, WITH_MF).replace('"dryRun":false', '"dryRun":fals'));
  check(updateReview(WITH_MF, WITH_MF).replace('"data":{"a":"1"}', '"data":{"a":"1",}'));
  // Planted markers: at most the member is removed, never anything else.
  for (const marker of Object.values(internals.MARKERS)) {
    const m = JSON.stringify(marker);
    check(updateReview(`{"managedFields":${m}}`, WITH_MF));
    check(updateReview(WITH_MF, `{"managedFields":${m}}`));
    check(updateReview(WITH_MF, `{"name":${m},"managedFields":${MF}}`));
  }
});

// ---------- properties ----------

const jsonText = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v));
const indent = fc.constantFrom<[number | string]>([0], [2], ['\t'], [' \n ']);

test('property: the grammar check accepts exactly what JSON.parse accepts', () => {
  const alphabet = fc.constantFrom(...'{}[]":,\\ \n\t01-9.eE+-tfnrulsaxu"é'.split(''), 'true', 'false', 'null', '\\u00', '\u0001', '\u0010', '\u001f', '\u007f');
  const text = fc.oneof(
    jsonText,
    fc.array(alphabet, { maxLength: 30 }).map((a) => a.join('')),
    // a valid value with one closer swapped for the other kind
    jsonText.filter((t) => /[\]}]/.test(t)).chain((t) => fc.nat(t.length).map((n) => {
      const at = [...t.matchAll(/[\]}]/g)].map((m) => m.index!);
      const i = at[n % at.length]!;
      return t.slice(0, i) + (t[i] === ']' ? '}' : ']') + t.slice(i + 1);
    })),
    // a valid value with one edit: a character deleted, inserted or replaced
    fc.tuple(jsonText, fc.nat(), alphabet, fc.constantFrom('delete', 'insert', 'replace')).map(([t, at, c, how]) => {
      const i = t.length ? at % t.length : 0;
      return how === 'delete' ? t.slice(0, i) + t.slice(i + 1) : how === 'insert' ? t.slice(0, i) + c + t.slice(i) : t.slice(0, i) + c + t.slice(i + 1);
    }),
  );
  fc.assert(
    fc.property(text, (t) => {
      const trimmed = t.replace(/^[ \n\r\t]+|[ \n\r\t]+$/g, '');
      const buf = Buffer.from(trimmed, 'utf8');
      const accepted = trimmed.length > 0 && internals.skipValue(buf, 0) === buf.length;
      let valid = true;
      try {
        JSON.parse(trimmed);
      } catch {
        valid = false;
      }
      assert.equal(accepted, valid, JSON.stringify(trimmed));
    }),
    { numRuns: 3000 },
  );
});

test('property: random reviews, laid out in random ways, parse to JSON.parse minus managedFields', () => {
  const member = fc.tuple(fc.constantFrom('name', 'labels', 'annotations', 'managedFields', 'uid', '__proto__', 'constructor'), fc.jsonValue({ maxDepth: 3 }));
  const metadata = fc.array(member, { maxLength: 6 });
  fc.assert(
    fc.property(metadata, fc.jsonValue({ maxDepth: 3 }), indent, (members, mf, [space]) => {
      const text = `{${[...members, ['managedFields', mf] as const].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v, null, space)}`).join(space ? ',\n' : ',')}}`;
      check(review(text));
    }),
    { numRuns: 500 },
  );
});

test('property: random UPDATE reviews, laid out in random ways, parse to JSON.parse minus both managedFields', () => {
  const member = fc.tuple(fc.constantFrom('name', 'labels', 'managedFields', 'uid', '__proto__'), fc.jsonValue({ maxDepth: 3 }));
  const metadata = fc.tuple(fc.array(member, { maxLength: 4 }), fc.option(fc.jsonValue({ maxDepth: 3 })), indent).map(([members, mf, [space]]) => {
    const all = mf === null ? members : [...members, ['managedFields', mf] as const];
    return `{${all.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v, null, space)}`).join(space ? ',\n' : ',')}}`;
  });
  const layout = fc.record({ operation: fc.constantFrom<Layout['operation']>('before', 'before', 'between', 'after', 'none'), op: fc.constantFrom('UPDATE', 'UPDATE', 'CREATE'), oldFirst: fc.boolean() });
  fc.assert(
    fc.property(metadata, metadata, layout, (m, old, l) => {
      check(updateReview(m, old, l));
    }),
    { numRuns: 500 },
  );
});

test('property: a review with one edit anywhere gives what JSON.parse gives (or its error)', () => {
  const create: any = FIXTURES[0]!.review('uid-e');
  const update = structuredClone(create);
  update.request.operation = 'UPDATE';
  update.request.oldObject = structuredClone(update.request.object);
  const bases = [JSON.stringify(create), JSON.stringify(update)];
  const c = fc.constantFrom(...'{}[]":,\\ 0-.eatf'.split(''));
  fc.assert(
    fc.property(fc.nat(1), fc.nat(), c, fc.constantFrom('delete', 'insert', 'replace'), (which, at, ch, how) => {
      const base = bases[which]!;
      const i = at % base.length;
      const t = how === 'delete' ? base.slice(0, i) + base.slice(i + 1) : how === 'insert' ? base.slice(0, i) + ch + base.slice(i) : base.slice(0, i) + ch + base.slice(i + 1);
      check(t);
    }),
    { numRuns: 3000 },
  );
});

// ---------- the answer is the same ----------

test('/mutate and /validate answer exactly as they would with managedFields parsed (fixtures, golden pods, UPDATEs)', async () => {
  const config = defaultConfig();
  const log = silentLogger();
  const validation = await startValidation({ config, log, cluster: 'none' });
  try {
    const reviews: any[] = FIXTURES.map((f) => f.review('uid-same'));
    const dir = `${ROOT}/test/golden`;
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml') && !n.endsWith('.config.yaml')))
      for (const doc of parseAllDocuments(readFileSync(`${dir}/${f}`, 'utf8'), KUBECTL_YAML) as any[]) {
        const o = doc.toJS();
        if (o?.kind === 'Pod') reviews.push(wrap(withManagedFields(structuredClone(o), 'kubectl-client-side-apply'), `uid-${f}`, o.metadata?.namespace ?? 'default'));
      }
    // The same as UPDATEs (the old object with one label less), and UPDATEs of workloads and of kagent's ConfigMap.
    const GROUPS: Record<string, string> = { Deployment: 'apps', StatefulSet: 'apps', DaemonSet: 'apps', ReplicaSet: 'apps', Job: 'batch', CronJob: 'batch' };
    const objects = reviews.map((r) => r.request.object);
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml') && !n.endsWith('.config.yaml')))
      for (const doc of parseAllDocuments(readFileSync(`${dir}/${f}`, 'utf8'), KUBECTL_YAML) as any[]) {
        const o = doc.toJS();
        if (o?.kind in GROUPS) objects.push({ ...o, metadata: { ...o.metadata, managedFields: JSON.parse(MF) } });
      }
    for (const value of ['"true"', '"false"', 'true', null])
      objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kagent-enterprise-config', namespace: 'kagent', managedFields: JSON.parse(MF) }, data: value === null ? { OTHER: 'x' } : { K8S_TOKEN_REVIEW: JSON.parse(value) } });
    let n = 0;
    for (const o of objects) {
      const kind = o.kind as string;
      const group = GROUPS[kind] ?? '';
      const old = structuredClone(o);
      old.metadata.labels = { ...o.metadata.labels, 'before-update': 'yes' };
      const u: any = wrap(structuredClone(o), `uid-update-${n++}`, o.metadata.namespace ?? 'team-a');
      Object.assign(u.request, {
        kind: { group, version: 'v1', kind },
        requestKind: { group, version: 'v1', kind },
        operation: 'UPDATE',
        oldObject: old,
        options: { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1' },
      });
      reviews.push(u);
    }
    assert.ok(reviews.length > 50, `only ${reviews.length} reviews`);
    let patched = 0;
    let updates = 0;
    for (const review of reviews) {
      const body = Buffer.from(JSON.stringify(review));
      const spans = internals.spans(body);
      assert.ok(spans.object, 'the review carries managedFields the scan finds');
      if (review.request.operation === 'UPDATE') {
        assert.ok(spans.oldObject, `${review.request.uid}: the scan finds the old object's managedFields`);
        updates++;
      }
      const full = JSON.parse(body.toString()).request; // what the webhook saw before change 26
      const want = reviewJson(mutate(full, { config, validation }).response);
      const got = answerAdmission('mutate', body, { config, log, validation });
      assert.ok(!(got instanceof Promise), 'an admission that is not a Helm record is answered at once');
      assert.equal(got.status, 200);
      assert.equal(got.text, want, `${review.request.uid}: /mutate answer differs`);
      if (JSON.parse(got.text).response.patch) patched++;
      const wantValidate = reviewJson(validation.validate(JSON.parse(body.toString()).request).response);
      assert.equal((answerAdmission('validate', body, { config, log, validation }) as Answer).text, wantValidate, `${review.request.uid}: /validate answer differs`);
    }
    assert.ok(patched > 10, `only ${patched} answers carried a patch`);
    assert.ok(updates > 30, `only ${updates} UPDATEs`);
  } finally {
    await validation.close();
  }
});
