// What the admission metrics count: /mutate's denials (and injection warnings, as warned) in rule_violations_total like /validate's rules, and an
// object the webhook could not evaluate as result="error" in admission_requests_total, apart from policy denials.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import fastJsonPatch from 'fast-json-patch';
import pino from 'pino';
import { defaultConfig } from '../webhook/config.ts';
import type { AdmissionRequest } from '../webhook/admission.ts';
import { requestRef } from '../webhook/admission.ts';
import { createLogger } from '../webhook/log.ts';
import { registry } from '../webhook/metrics.ts';
import { answerAdmission } from '../webhook/server.ts';
import type { ValidationService } from '../webhook/validation.ts';
import { startValidation } from '../webhook/validation.ts';
import type { TestServer } from './helpers.ts';
import { podCreateRequest, startTestServer } from './helpers.ts';

async function value(name: string, labels: Record<string, string>): Promise<number> {
  const m = await registry.getSingleMetric(name)!.get();
  const v = m.values.find((x) => Object.keys(labels).length === Object.keys(x.labels).length && Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}
const violations = (rule: string, action = 'denied') => value('kagenti_webhook_rule_violations_total', { rule, action });
const requests = (webhook: string, result: string, operation = 'CREATE') => value('kagenti_webhook_admission_requests_total', { webhook, operation, result });

function agentPod(spec: Record<string, unknown> = {}, annotations?: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'weather-agent', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' }, ...(annotations ? { annotations } : {}) },
    spec: { serviceAccountName: 'weather-agent', containers: [{ name: 'agent', image: 'ghcr.io/example/agent:1' }], ...spec },
  };
}

describe('admission metrics', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.close();
  });

  test('each /mutate denial counts rule_violations_total{rule,action="denied"} once; an injection counts none', async () => {
    const denials: Array<[string, Record<string, unknown>]> = [
      ['invalid-annotation', agentPod({}, { 'kagenti.io/authbridge-mode': 'sidecar' })],
      ['reserved-name', agentPod({ containers: [{ name: 'agent', image: 'a:1' }, { name: 'spiffe-helper', image: 'b:1' }] })],
      ['port-conflict', agentPod({ containers: [{ name: 'agent', image: 'a:1', ports: [{ containerPort: 15123 }] }] })],
      ['host-network', agentPod({ hostNetwork: true })],
      ['malformed-object', agentPod({ containers: 'agent' })],
      ['pod-resources', agentPod({ resources: { requests: { cpu: '10m' } }, containers: [{ name: 'agent', image: 'a:1', resources: { requests: { cpu: '10m' } } }] })],
    ];
    for (const [rule, pod] of denials) {
      const before = await violations(rule);
      const deniedBefore = await requests('mutate', 'denied');
      const res = await s.review('/mutate', podCreateRequest(pod));
      assert.equal(res.allowed, false, rule);
      assert.match(res.status.message, new RegExp(`^\\[${rule}\\] `));
      assert.equal(await violations(rule), before + 1, rule);
      assert.equal(await requests('mutate', 'denied'), deniedBefore + 1, rule);
    }
    const total = async () => (await registry.getSingleMetric('kagenti_webhook_rule_violations_total')!.get()).values.reduce((n, v) => n + v.value, 0);
    const all = await total();
    assert.ok((await s.review('/mutate', podCreateRequest(agentPod()))).patch);
    assert.equal(await total(), all, 'an injected pod is no violation');
  });

  test('a pod with two port conflicts counts port-conflict twice, as /validate counts each violation; the log names the rule once', async () => {
    const pod = agentPod({
      containers: [
        { name: 'agent', image: 'a:1', ports: [{ containerPort: 15123 }] },
        { name: 'tool', image: 'b:1', ports: [{ containerPort: 15124 }] },
      ],
    });
    const before = await violations('port-conflict');
    const res = await s.review('/mutate', podCreateRequest(pod));
    assert.equal(res.allowed, false);
    assert.equal(res.status.message.split('\n').filter((l: string) => l.startsWith('[port-conflict] ')).length, 2);
    assert.equal(await violations('port-conflict'), before + 2);
  });

  test('a pod injected with warnings counts each warning once as action="warned"; its re-invocation counts none', async () => {
    const pod = agentPod({ restartPolicy: 'Never', initContainers: [{ name: 'fetch', image: 'curl' }] });
    const block = await violations('sidecars-block-completion', 'warned');
    const init = await violations('init-before-proxy', 'warned');
    const res = await s.review('/mutate', podCreateRequest(pod));
    assert.ok(res.patch);
    assert.ok(res.warnings.some((w: string) => w.startsWith('[sidecars-block-completion] ')));
    assert.equal(await violations('sidecars-block-completion', 'warned'), block + 1);
    assert.equal(await violations('init-before-proxy', 'warned'), init + 1);
    // the API server calls again after another webhook's change (reinvocationPolicy: IfNeeded): nothing to patch,
    // the same warnings, counted once already
    const patched = fastJsonPatch.applyPatch(structuredClone(pod), JSON.parse(Buffer.from(res.patch, 'base64').toString())).newDocument;
    const again = await s.review('/mutate', podCreateRequest(patched));
    assert.equal(again.patch, undefined);
    assert.equal(await violations('sidecars-block-completion', 'warned'), block + 1);
  });

  test('/validate still counts its rules once per violation, denied or warned', async () => {
    const before = await violations('dedicated-service-account');
    const res = await s.review('/validate', podCreateRequest(agentPod({ serviceAccountName: 'default' })));
    assert.equal(res.allowed, false);
    assert.match(res.status.message, /^\[dedicated-service-account\]/);
    assert.equal(await violations('dedicated-service-account'), before + 1);
  });
});

test('an object /validate could not evaluate is result="error", not "denied", and no rule violation', async () => {
  const config = defaultConfig();
  const real = await startValidation({ config, log: pino({ level: 'silent' }), cluster: 'none' });
  // a request object whose pod template cannot be read: validate() fails inside and answers with an internal error
  const broken: ValidationService = {
    ...real,
    // the server answers through validate() when there is no answer() (which would reach the real validation)
    answer: undefined,
    validate: (req) =>
      real.validate({
        ...req,
        object: {
          ...req.object,
          get spec(): never {
            throw new Error('unreadable');
          },
        },
      }),
  };
  try {
    const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'w', namespace: 'team-a' }, spec: {} };
    const request = { uid: 'broken', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, namespace: 'team-a', name: 'w', operation: 'UPDATE', object: deployment, oldObject: deployment };
    const errors = await requests('validate', 'error', 'UPDATE');
    const denied = await requests('validate', 'denied', 'UPDATE');
    const body = Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request }));
    const answer = answerAdmission('validate', body, { config, log: pino({ level: 'silent' }), validation: broken });
    assert.ok(!(answer instanceof Promise));
    const response = JSON.parse(answer.text).response;
    assert.equal(response.allowed, false);
    assert.equal(response.status.code, 500);
    assert.match(response.status.message, /^\[internal-error\] Deployment team-a\/w: /);
    assert.equal(await requests('validate', 'error', 'UPDATE'), errors + 1);
    assert.equal(await requests('validate', 'denied', 'UPDATE'), denied);
    assert.equal(await violations('internal-error'), 0);
    // a create with generateName has no name yet: the message names it as the other messages do
    const generated = { ...deployment, metadata: { generateName: 'web-', namespace: 'team-a' } };
    const created = broken.validate({ ...request, name: '', operation: 'CREATE', object: generated, oldObject: null } as AdmissionRequest);
    assert.match(created.response.status!.message, /^\[internal-error\] Deployment team-a\/web-<generated>: the webhook could not evaluate this object/);
  } finally {
    await real.close();
  }
});

test('requestRef names a request as objectRef names its object: the request\'s name, else generateName, never an empty name', () => {
  const kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
  const base = { uid: 'u', kind, operation: 'CREATE' };
  assert.equal(requestRef({ ...base, namespace: 'team-a', name: 'w', object: { metadata: { name: 'w' } } }), 'Deployment team-a/w');
  assert.equal(requestRef({ ...base, namespace: 'team-a', name: '', object: { metadata: { generateName: 'web-' } } }), 'Deployment team-a/web-<generated>');
  assert.equal(requestRef({ ...base, namespace: 'team-a', object: { metadata: { name: 'w' } } }), 'Deployment team-a/w');
  assert.equal(requestRef({ ...base, operation: 'DELETE', namespace: 'team-a', name: '', object: null, oldObject: { metadata: { name: 'old' } } }), 'Deployment team-a/old');
  assert.equal(requestRef({ ...base, namespace: 'team-a', object: null }), 'Deployment team-a/<unnamed>');
  assert.equal(requestRef({ ...base, kind: { group: '', version: 'v1', kind: 'Namespace' }, name: 'agents' }), 'Namespace agents');
  assert.equal(requestRef(undefined), 'object <unnamed>');
});

test('a /mutate handler failure is answered as an [internal-error] 500 denial, counted as result="error" and logged as decision "error"', async () => {
  const config = defaultConfig();
  const real = await startValidation({ config, log: pino({ level: 'silent' }), cluster: 'none' });
  const broken: ValidationService = {
    ...real,
    namespaceLabels: () => {
      throw new Error('cache exploded');
    },
  };
  const out: string[] = [];
  // the process logger (its serializers), writing here
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
  try {
    const errors = await requests('mutate', 'error');
    const denied = await requests('mutate', 'denied');
    const body = Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest(agentPod()) }));
    const answer = answerAdmission('mutate', body, { config, log, validation: broken });
    assert.ok(!(answer instanceof Promise));
    const response = JSON.parse(answer.text).response;
    assert.equal(response.allowed, false);
    assert.deepEqual([response.status.code, response.status.reason], [500, 'InternalError']);
    assert.match(response.status.message, /^\[internal-error\] Pod team-a\/weather-agent: the webhook could not evaluate this object/);
    assert.equal(await requests('mutate', 'error'), errors + 1);
    assert.equal(await requests('mutate', 'denied'), denied);
    assert.equal(await violations('internal-error'), 0, 'an internal error is no rule violation');
    const line = out.map((l) => JSON.parse(l)).find((l) => l.msg === 'admission');
    assert.equal(line.decision, 'error');
    // the error line: {type, message, stack}, the stack cut to 2,000 characters, for the report to the platform team
    const failed = out.map((l) => JSON.parse(l)).find((l) => l.msg === 'admission handler failed');
    assert.deepEqual([failed.err.type, failed.err.message], ['Error', 'cache exploded']);
    assert.match(failed.err.stack, /^Error: cache exploded\n\s+at /);
    assert.ok(failed.err.stack.length <= 2000);
    // a pod created with generateName (as a ReplicaSet creates them) has no name in the request
    const generated = agentPod();
    generated.metadata = { generateName: 'weather-agent-7d9f8b-', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' } };
    const named = answerAdmission('mutate', Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: podCreateRequest(generated) })), { config, log, validation: broken });
    assert.ok(!(named instanceof Promise));
    assert.match(JSON.parse(named.text).response.status.message, /^\[internal-error\] Pod team-a\/weather-agent-7d9f8b-<generated>: the webhook could not evaluate this object/);
  } finally {
    await real.close();
  }
});

test('the log line cuts a name, uid, kind or user of megabytes and says what a name that is not a string is, instead of logging it whole', async () => {
  const config = defaultConfig();
  const validation = await startValidation({ config, log: pino({ level: 'silent' }), cluster: 'none' });
  const out: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
  try {
    const send = (metadata: Record<string, unknown>) => {
      const pod = agentPod();
      pod.metadata = { ...metadata, namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' } };
      const answer = answerAdmission('mutate', Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...podCreateRequest(pod), name: '' } })), { config, log, validation });
      assert.ok(!(answer instanceof Promise));
      const line = out.at(-1)!;
      assert.ok(line.length < 10_000, `a log line of ${line.length} bytes`);
      return JSON.parse(line);
    };
    const long = 'a'.repeat(2_000_000);
    // as messages show names (shown): the start and the length
    const cut = `${'a'.repeat(60)}...(2000000 characters)`;
    assert.equal(send({ name: long }).name, cut);
    const gen = send({ generateName: long });
    assert.equal(gen.name, undefined);
    assert.equal(gen.generateName, cut);
    assert.equal(send({ name: { a: long } }).name, '(not a string: object)');
    assert.equal(send({ name: 'weather-agent' }).name, 'weather-agent');
    // the request's own fields: any client that reaches the port can send them
    const pod = agentPod();
    pod.metadata = { name: 'p', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' } };
    const base = podCreateRequest(pod);
    for (const request of [
      { ...base, uid: long },
      { ...base, userInfo: { username: long } },
      { ...base, kind: { group: '', version: 'v1', kind: long } },
    ]) {
      const answer = answerAdmission('mutate', Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request })), { config, log, validation });
      assert.ok(!(answer instanceof Promise));
      const line = out.at(-1)!;
      assert.ok(line.length < 10_000, `a log line of ${line.length} bytes`);
      const l = JSON.parse(line);
      assert.ok([l.uid, l.user, l.kind].includes(cut), line.slice(0, 300));
    }
  } finally {
    await validation.close();
  }
});

test('/validate\'s internal error is logged with the error\'s type, message and stack, as an object (err has one shape on every line)', async () => {
  const out: string[] = [];
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
  const svc = await startValidation({ config: defaultConfig(), log, cluster: 'none' });
  try {
    const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'w', namespace: 'team-a' } };
    const object = {
      ...deployment,
      get spec(): never {
        throw new TypeError('unreadable spec');
      },
    };
    const d = svc.validate({ uid: 'u1', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, namespace: 'team-a', name: 'w', operation: 'CREATE', object } as AdmissionRequest);
    assert.equal(d.result, 'error');
    const line = out.map((l) => JSON.parse(l)).find((l) => /internal error; denying/.test(l.msg));
    assert.ok(line, out.join(''));
    assert.deepEqual([line.err.type, line.err.message, line.uid], ['TypeError', 'unreadable spec', 'u1']);
    assert.match(line.err.stack, /^TypeError: unreadable spec\n\s+at /);
    // the decision's detail (spread into the admission line) carries err in the same shape, without the stack
    assert.deepEqual(d.detail?.err, { type: 'TypeError', message: 'unreadable spec' });
  } finally {
    await svc.close();
  }
});

test('/validate\'s skip reason cuts a kind or an owner name of megabytes (any client can send them): no log line of megabytes', async () => {
  const config = defaultConfig();
  const out: string[] = [];
  const log = createLogger('info', new Writable({ write: (c, _e, cb) => (out.push(String(c)), cb()) }));
  const validation = await startValidation({ config, log: pino({ level: 'silent' }), cluster: 'none' });
  try {
    const long = 'x'.repeat(3_000_000);
    const cut = `${'x'.repeat(60)}...(3000000 characters)`;
    const send = (request: Record<string, unknown>) => {
      const answer = answerAdmission('validate', Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request })), { config, log, validation });
      assert.ok(!(answer instanceof Promise));
      assert.equal(JSON.parse(answer.text).response.allowed, true);
      const line = out.at(-1)!;
      assert.ok(line.length < 10_000, `a log line of ${line.length} bytes`);
      return JSON.parse(line);
    };
    // a kind /validate does not check, named by the request
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'team-a' } };
    const kindLine = send({ uid: 'k', kind: { group: '', version: 'v1', kind: long }, namespace: 'team-a', name: 'p', operation: 'CREATE', object: pod });
    assert.equal(kindLine.skipped, `kind ${cut} not validated`);
    // a ReplicaSet of a Deployment whose name is megabytes (checked on its owner)
    const owned = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'rs', namespace: 'team-a', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: long, uid: 'u', controller: true }] },
      spec: { template: { metadata: { labels: { 'kagenti.io/type': 'agent' } }, spec: { serviceAccountName: 'sa', containers: [{ name: 'a', image: 'x' }] } } },
    };
    const ownerLine = send({ uid: 'o', kind: { group: 'apps', version: 'v1', kind: 'ReplicaSet' }, namespace: 'team-a', name: 'rs', operation: 'CREATE', object: owned });
    assert.equal(ownerLine.skipped, `owned by Deployment ${cut} (checked there)`, JSON.stringify(ownerLine).slice(0, 600));
  } finally {
    await validation.close();
  }
});
