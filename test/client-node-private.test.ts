// cluster.ts sets three private fields of @kubernetes/client-node through `as unknown as` casts, which the compiler
// cannot check. An upgrade that renames or drops one would silently turn the fix off (the assignment just adds an
// unused property); these tests fail instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig, ListWatch, Watch } from '@kubernetes/client-node';

test('client-node Watch has requestTimeoutMs, which its watch() reads for the request timeout (cluster.ts sets it: the watch client timeout)', () => {
  const kc = new KubeConfig();
  const w = new Watch(kc);
  assert.ok(Object.hasOwn(w, 'requestTimeoutMs'), 'Watch instances own a requestTimeoutMs field');
  assert.equal(typeof (w as unknown as { requestTimeoutMs: unknown }).requestTimeoutMs, 'number');
  assert.match(String(Watch.prototype.watch), /this\.requestTimeoutMs\b/, 'Watch.watch reads this.requestTimeoutMs');
});

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
