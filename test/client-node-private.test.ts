// The webhook reaches into @kubernetes/client-node's private fields through `as unknown as` casts, which the compiler
// cannot check. An upgrade that renames or drops one would silently turn the fix off (the assignment just adds an
// unused property, the lookup finds nothing); these tests fail instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig, ListWatch } from '@kubernetes/client-node';
import type { Watch } from '@kubernetes/client-node';

test('client-node ListWatch has reconnectDelayMs and resourceVersion, which its watch loop reads (cluster.ts resets them: an immediate reconnect after a clean end, a relist after a too-large resourceVersion)', () => {
  const watch = { watch: async () => new AbortController() } as unknown as Watch;
  const lw = new ListWatch('/api/v1/pods', watch, async () => ({ items: [], metadata: {} }) as never, false);
  const fields = lw as unknown as { reconnectDelayMs: unknown; resourceVersion: unknown };
  assert.ok(Object.hasOwn(lw, 'reconnectDelayMs'), 'ListWatch instances own a reconnectDelayMs field');
  assert.equal(typeof fields.reconnectDelayMs, 'number');
  assert.ok(Object.hasOwn(lw, 'resourceVersion'), 'ListWatch instances own a resourceVersion field');
  assert.equal(typeof fields.resourceVersion, 'string');
  // the code that acts on them: the reconnect delay before a new watch, and the resourceVersion it resumes from
  // (empty: list first)
  const source = Object.getOwnPropertyNames(ListWatch.prototype)
    .map((k) => Object.getOwnPropertyDescriptor(ListWatch.prototype, k)?.value)
    .filter((f): f is (...args: unknown[]) => unknown => typeof f === 'function')
    .map((f) => String(f))
    .join('\n');
  assert.match(source, /this\.reconnectDelayMs\b/);
  assert.match(source, /if \(!this\.resourceVersion\)/);
});

test('client-node KubeConfig caches its https.Agent in agentCache under getAgentCacheKey(cluster) (kube-http.ts drops the entry when the TLS material changes)', async () => {
  const kc = new KubeConfig();
  kc.loadFromString(
    'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://10.0.0.1:443", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
  );
  const priv = kc as unknown as { agentCache: unknown; getAgentCacheKey: (c: unknown) => string };
  assert.ok(priv.agentCache instanceof Map, 'KubeConfig instances own an agentCache Map');
  assert.equal(typeof priv.getAgentCacheKey, 'function');
  const opts: { agent?: unknown } = {};
  await kc.applyToHTTPSOptions(opts as never);
  const key = priv.getAgentCacheKey(kc.getCurrentCluster());
  assert.equal((priv.agentCache as Map<string, unknown>).get(key), opts.agent, 'the agent applyToHTTPSOptions gives is the cached one');
  (priv.agentCache as Map<string, unknown>).delete(key);
  const again: { agent?: unknown } = {};
  await kc.applyToHTTPSOptions(again as never);
  assert.notEqual(again.agent, opts.agent, 'without the entry, a new agent is made');
});
