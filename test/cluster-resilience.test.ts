// Cluster-state resilience: what the informers do when watches end, hang, flap or send lines that make no sense,
// and when credentials stop working. No kube-apiserver can be installed on the machines these tests run on, so
// test/fake-apiserver.ts stands in for one: an in-test HTTP server that serves recorded list responses and watch
// event streams in the API server's wire format. The informers are the real @kubernetes/client-node ListWatch +
// Watch, talking to it through a real KubeConfig (here also with a real exec credential plugin, a shell script).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { AdmissionRequest } from '../webhook/admission.ts';
import type { BackoffOptions } from '../webhook/cluster.ts';
import { registry } from '../webhook/metrics.ts';
import type { ValidationService } from '../webhook/validation.ts';
import { FakeApiServer, PATHS, startOnFakeApi, until } from './fake-apiserver.ts';
import { deploymentRequest } from './helpers.ts';

const AGENT = { 'kagenti.io/type': 'agent' };

function deployment(name: string, sa: string, ns = 'team-a') {
  return {
    metadata: { name, namespace: ns },
    spec: { replicas: 1, template: { metadata: { labels: AGENT }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } } },
  };
}

function barePod(name: string, sa: string, ns = 'team-a') {
  return { metadata: { name, namespace: ns, labels: AGENT }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] }, status: { phase: 'Running' } };
}


function seedBasics(api: FakeApiServer) {
  api.seed(PATHS.namespaces, [{ metadata: { name: 'team-a' } }]);
  api.seed(PATHS.csidrivers, [{ metadata: { name: 'csi.spiffe.io' } }]);
  api.seed(PATHS.pods, [barePod('weather', 'weather-sa')]);
}

async function setup(
  opts: {
    seed?: (api: FakeApiServer) => void;
    config?: Record<string, unknown>;
    backoff?: BackoffOptions;
    kubeConfig?: (api: FakeApiServer) => KubeConfig;
    watchTimeoutMs?: number;
  } = {},
) {
  return startOnFakeApi(opts.seed ?? seedBasics, opts.config, (api) => ({
    ...(opts.kubeConfig ? { kubeConfig: opts.kubeConfig(api) } : {}),
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    watchTimeoutMs: opts.watchTimeoutMs,
  }));
}

const denied = (svc: ValidationService, name: string, sa: string) => svc.validate(deploymentRequest(deployment(name, sa))).response.allowed === false;
const watchRequests = (api: FakeApiServer, path: string) => api.requests.filter((r) => r.startsWith(`GET ${path}?`) && r.includes('watch=true'));
const listRequests = (api: FakeApiServer, path: string) => api.requests.filter((r) => r.startsWith(`GET ${path}?`) && !r.includes('watch=true'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function cacheAgeMetric(): Promise<number> {
  const m = await registry.getSingleMetric('kagenti_webhook_cluster_cache_age_seconds')!.get();
  return m.values[0]!.value;
}

test('an exec credential plugin that fails at a routine watch reconnect is a watch failure: logged, retried with backoff, served from the cache', async () => {
  // A kubeconfig user with an exec plugin (as `aws eks get-token` is): it works until its session "expires" (a file
  // appears), then fails with a message on stderr. Its credentials expire at once, so every request runs it.
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-exec-'));
  const plugin = join(dir, 'get-token.sh');
  writeFileSync(
    plugin,
    `#!/bin/sh
if [ -e "${dir}/expired" ]; then echo "error: the SSO session has expired (simulated)" >&2; echo "run aws sso login" >&2; exit 1; fi
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"2000-01-01T00:00:00Z"}}'
`,
  );
  chmodSync(plugin, 0o755);
  const { api, svc, lines, close } = await setup({
    backoff: { baseMs: 50, maxMs: 400 },
    kubeConfig: (api) => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'fake', server: api.url, skipTLSVerify: true }],
        users: [{ name: 'sso', exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, args: [] } } as any],
        contexts: [{ name: 'fake', cluster: 'fake', user: 'sso' }],
        currentContext: 'fake',
      });
      return kc;
    },
  });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    assert.ok(denied(svc, 'news', 'weather-sa'));
    writeFileSync(join(dir, 'expired'), '');
    // the API server ends the watch cleanly (its watch timeout); ListWatch reconnects at once, and the plugin fails
    assert.equal(api.closeWatches(PATHS.pods), 1);
    const failures = () => lines.filter((l) => l.level === 'warn' && l.resource === 'pods' && l.verb === 'watch');
    await until(() => failures().length >= 3, 'three failed reconnects logged');
    const first = failures()[0]!;
    assert.equal((first.err as { message: string }).message, 'error: the SSO session has expired (simulated)', 'the first line of the plugin\'s stderr');
    assert.match(first.msg, /^cluster cache: watch pods failed; serving from cache, retrying in \d+ ms$/);
    const delays = failures().map((l) => l.retryInMs as number);
    assert.ok(delays[1]! > delays[0]! && delays[2]! > delays[1]!, `the backoff grows: ${delays}`);
    // the webhook keeps serving from its cache, ready, and says how old the cache is and why
    assert.equal(svc.readiness().ready, true);
    assert.ok(denied(svc, 'news', 'weather-sa'));
    assert.match(String((svc.readiness().detail.errors as Record<string, string>).pods), /SSO session has expired/);
    assert.ok((await cacheAgeMetric()) > 0, 'the cache age grows');
    // the plugin works again: the watch resumes and the error is gone
    rmSync(join(dir, 'expired'));
    await api.waitForWatch(PATHS.pods, 2);
    await until(() => svc.readiness().detail.errors === undefined, 'errors cleared');
  } finally {
    await close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('watch lines without an object: an ERROR without its Status ends the watch as failed; a BOOKMARK or ADDED without one is dropped', async () => {
  const { api, svc, lines, close } = await setup();
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    const lists = listRequests(api, PATHS.pods).length;
    // dropped: nothing to apply, and the watch goes on (client-node's cache would throw on each)
    api.writeLine(PATHS.pods, '{"type":"BOOKMARK"}');
    api.writeLine(PATHS.pods, '{"type":"ADDED","object":null}');
    api.writeLine(PATHS.pods, '{"type":"MODIFIED","object":"x"}');
    // a BOOKMARK without a resourceVersion would make the next reconnect relist everything
    api.writeLine(PATHS.pods, '{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{}}}');
    api.emit(PATHS.pods, 'ADDED', barePod('news', 'news-sa'));
    await until(() => denied(svc, 'other', 'news-sa'), 'the next event arrives on the same watch');
    assert.equal(api.watchConnects(PATHS.pods), 1);
    assert.equal(lines.filter((l) => l.level === 'warn').length, 0, JSON.stringify(lines.filter((l) => l.level === 'warn')));
    // an ERROR without a Status: a failed watch (logged, backoff), resumed from the last resourceVersion
    api.writeLine(PATHS.pods, '{"type":"ERROR"}');
    await api.waitForWatch(PATHS.pods, 2);
    const warn = lines.find((l) => l.level === 'warn' && l.resource === 'pods');
    assert.ok(warn, 'logged');
    assert.equal((warn.err as { message: string }).message, 'the API server sent an ERROR watch event without a Status object');
    assert.match(watchRequests(api, PATHS.pods).at(-1)!, /resourceVersion=\d+/);
    assert.equal(listRequests(api, PATHS.pods).length, lists, 'no relist');
    assert.equal(svc.readiness().ready, true);
    api.emit(PATHS.pods, 'ADDED', barePod('late', 'late-sa'));
    await until(() => denied(svc, 'other', 'late-sa'), 'events after the reconnect arrive');
  } finally {
    await close();
  }
});

test('watches ask for bookmarks and for the API server to end them after 60-90 s; the next one resumes from the last bookmark', async () => {
  const { api, svc, close } = await setup();
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    for (const path of [PATHS.pods, PATHS.namespaces, PATHS.csidrivers]) {
      await api.waitForWatch(path, 1);
      const q = new URL(`http://x${watchRequests(api, path)[0]!.slice('GET '.length)}`).searchParams;
      assert.equal(q.get('allowWatchBookmarks'), 'true', path);
      const t = Number(q.get('timeoutSeconds'));
      assert.ok(t >= 60 && t < 90, `${path}: timeoutSeconds=${t}`);
    }
    const lists = listRequests(api, PATHS.pods).length;
    // no agent pod changed, but the cluster moved on: the bookmark carries its resourceVersion
    api.writeLine(PATHS.pods, JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: '99999' } } }));
    await sleep(50);
    api.closeWatches(PATHS.pods); // the API server's timeoutSeconds
    await api.waitForWatch(PATHS.pods, 2);
    assert.match(watchRequests(api, PATHS.pods).at(-1)!, /[?&]resourceVersion=99999(&|$)/);
    assert.equal(listRequests(api, PATHS.pods).length, lists, 'no relist');
  } finally {
    await close();
  }
});

test('a watch ERROR with a Status other than 410 ends the watch as failed (logged, in /readyz); a resourceVersion the API server has not reached relists', async () => {
  const { api, svc, lines, close } = await setup();
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    const lists = listRequests(api, PATHS.pods).length;
    // client-node ignores such an event, and the clean end after it resumed from the same resourceVersion silently
    api.writeLine(PATHS.pods, JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500, reason: 'InternalError', message: 'etcdserver: leader changed' } }));
    await api.waitForWatch(PATHS.pods, 2);
    const warn = lines.find((l) => l.level === 'warn' && l.resource === 'pods');
    assert.ok(warn, 'logged');
    assert.equal((warn.err as { message: string }).message, 'the API server ended the watch with an ERROR event: 500 InternalError: etcdserver: leader changed');
    assert.equal(warn.status, 500);
    assert.equal(listRequests(api, PATHS.pods).length, lists, 'resumed from its resourceVersion, no relist');

    // an etcd restored from a backup: the store is not what the cache holds, and the watch's resourceVersion is ahead
    // of the API server's; every resumed watch would get this again, so the informer lists again
    api.clear(PATHS.pods);
    api.seed(PATHS.pods, [barePod('restored', 'restored-sa')]);
    assert.equal(denied(svc, 'other', 'weather-sa'), true, 'the cache still holds the pod the restore removed');
    api.writeLine(
      PATHS.pods,
      JSON.stringify({
        type: 'ERROR',
        object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 504, reason: 'Timeout', message: 'Timeout: Too large resource version: 1003, current: 500', details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] } },
      }),
    );
    // a failure (logged, in /readyz, after the backoff), whose restart lists again instead of resuming
    await until(() => lines.some((l) => l.level === 'warn' && l.resource === 'pods' && /^the API server is behind the watch's resourceVersion .*listing again after the backoff: 504 Timeout: Timeout: Too large resource version/.test(String((l.err as { message?: string } | undefined)?.message ?? ''))), 'logged');
    await until(() => listRequests(api, PATHS.pods).length > lists, 'relisted');
    await until(() => denied(svc, 'other', 'restored-sa') && !denied(svc, 'other', 'weather-sa'), 'the cache is the restored store');
  } finally {
    await close();
  }
});

test('a watch that is not connected counts in the cache age whatever ended it: a clean close whose next request is never answered', async () => {
  const { api, svc, lines, close } = await setup({ watchTimeoutMs: 1000 });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    const age = () => svc.readiness().detail.cacheAgeSeconds as number;
    // every watch connected: 0
    const connected = async () => {
      for (const end = Date.now() + 10_000; (await cacheAgeMetric()) !== 0; await sleep(10))
        if (Date.now() > end) throw new Error('timed out waiting for every watch to be connected');
    };
    await connected();
    // the API server ends the watch cleanly (not an error for client-node), then accepts watch requests and never
    // answers them; meanwhile a claim goes away that the webhook will not hear of
    api.hungWatches.add(PATHS.pods);
    const closedAt = Date.now();
    api.closeWatches(PATHS.pods);
    await sleep(1200);
    assert.ok((await cacheAgeMetric()) >= 1, `the metric grows from the close: ${await cacheAgeMetric()}`);
    assert.ok(age() >= 1, '/readyz says so too');
    // a request that got no response headers within the watch timeout is a failure: logged, backed off, shown
    await until(() => lines.some((l) => l.level === 'warn' && l.resource === 'pods'), 'logged');
    const warn = lines.find((l) => l.level === 'warn' && l.resource === 'pods')!;
    assert.equal((warn.err as { message: string }).message, 'the watch request got no response within 1 s');
    assert.match(String((svc.readiness().detail.errors as Record<string, string>).pods), /no response within 1 s/);
    assert.equal(svc.readiness().ready, true, 'still serving from the cache');
    assert.ok((await cacheAgeMetric()) >= (Date.now() - closedAt) / 1000 - 0.5);
    // answered again: connected, 0, no error
    api.hungWatches.delete(PATHS.pods);
    await until(() => api.openWatches(PATHS.pods) === 1, 'reconnected');
    await connected();
    await until(() => svc.readiness().detail.errors === undefined, 'error cleared');
    // a reset (an error) whose next request hangs: the same
    api.hungWatches.add(PATHS.pods);
    api.dropWatches(PATHS.pods);
    await sleep(1100);
    assert.ok((await cacheAgeMetric()) >= 1);
    api.hungWatches.delete(PATHS.pods);
  } finally {
    await close();
  }
});

test('a watch that connects and breaks at once, over and over, backs off to the maximum; one that stayed connected starts again from the base', async () => {
  const { api, svc, lines, close } = await setup({ backoff: { baseMs: 20, maxMs: 320, resetAfterMs: 500 } });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    const delays = () => lines.filter((l) => l.level === 'warn' && l.resource === 'pods').map((l) => l.retryInMs as number);
    // every pods watch gets its response headers, then a reset 5 ms later
    api.flappingWatches.add(PATHS.pods);
    api.dropWatches(PATHS.pods);
    await until(() => delays().length >= 7, 'seven failures');
    assert.deepEqual(delays().slice(0, 7), [20, 40, 80, 160, 320, 320, 320]);
    // connected and left alone past resetAfterMs: the next failure starts from the base again
    api.flappingWatches.delete(PATHS.pods);
    await until(() => api.openWatches(PATHS.pods) === 1, 'connected');
    await sleep(600);
    const n = delays().length;
    api.dropWatches(PATHS.pods);
    await until(() => delays().length > n, 'the next failure');
    assert.equal(delays()[n], 20);
  } finally {
    await close();
  }
});

test('the API server gone: the watch failures name the socket error, in the log and /readyz; one line says when each resource works again', async () => {
  const { api, svc, lines, close } = await setup({ backoff: { baseMs: 20, maxMs: 100 } });
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    const port = Number(new URL(api.url).port);
    // the API server goes away: its watches are cut and new connections are refused
    await api.stop();
    const refused = () => lines.filter((l) => l.level === 'warn' && l.resource === 'pods' && /ECONNREFUSED/.test(String((l.err as { message?: string } | undefined)?.message)));
    await until(() => refused().length > 0, 'a pods failure naming ECONNREFUSED');
    const err = refused()[0]!.err as Record<string, unknown>;
    assert.equal(typeof err, 'object', 'err is an object on every line');
    assert.equal(err.code, 'ECONNREFUSED');
    assert.match(String(err.message), /^connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    assert.equal(err.stack, undefined, 'no stack for a connection failure');
    await until(() => /ECONNREFUSED/.test(String((svc.readiness().detail.errors as Record<string, string> | undefined)?.pods)), '/readyz names the cause');
    assert.equal(lines.filter((l) => /works again/.test(l.msg)).length, 0);
    // the API server is back on the same address: each resource logs once that it recovered
    await new Promise<void>((resolve) => api.server.listen(port, '127.0.0.1', resolve));
    await until(() => lines.some((l) => l.level === 'info' && l.resource === 'pods' && /works again/.test(l.msg)), 'a recovery line for pods');
    await until(() => svc.readiness().detail.errors === undefined, 'no errors in /readyz');
    const back = lines.find((l) => l.level === 'info' && l.resource === 'pods' && /works again/.test(l.msg))!;
    assert.match(back.msg, /^cluster cache: (list|watch) pods works again after [\d.]+ s of errors \(the last: (list|watch) pods: .*ECONNREFUSED.*\); the cache is current$/);
    assert.equal(typeof back.brokenSeconds, 'number');
  } finally {
    await close();
  }
});

test('stopping cluster state while a watch waits for its response headers closes that request at once (client-node\'s ListWatch.stop() reaches only connected watches)', async () => {
  const { api, svc, close } = await setup({ watchTimeoutMs: 60_000 });
  let closed = false;
  try {
    await until(() => svc.readiness().ready, 'first sync');
    await api.waitForWatch(PATHS.pods, 1);
    // the pods watch ends cleanly, and its next request is accepted and never answered
    api.hungWatches.add(PATHS.pods);
    api.closeWatches(PATHS.pods);
    await until(() => api.heldRequests() === 1, 'the next watch request held');
    await svc.close();
    closed = true;
    // gone long before the watch's 60 s timeout
    await until(() => api.heldRequests() === 0, 'the held request closed');
  } finally {
    if (closed) await api.stop();
    else await close();
  }
});
