// The real `serve` process keeps serving after a promise rejection that nothing handles (Node's default is exit 1):
// it logs one line with a stable message and counts it in kagenti_webhook_unhandled_rejections_total. The rejection is
// raised from outside the webhook's code: a module preloaded with NODE_OPTIONS=--import rejects a promise, unhandled,
// each time the process gets SIGUSR2 (the webhook has no hook for it). Needs dist/: `npm test` builds it first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateCertificates, writeCertificates } from '../webhook/certs.ts';
import { admit, probeGet, startServerProcess, waitFor } from './server-process.ts';

const MSG = 'unhandled promise rejection (a background task failed); the webhook keeps serving';

test('serve: an unhandled promise rejection is logged on one line and counted, and the process keeps serving', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-rejection-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  writeCertificates(dir, certs);
  const preload = join(dir, 'reject-on-usr2.mjs');
  writeFileSync(
    preload,
    `let n = 0;
process.on('SIGUSR2', () => {
  n++;
  if (n === 1) Promise.reject(new Error('boom from a background task\\nwith a second line'));
  else (async () => { throw { code: 42 }; })();
});
`,
  );
  const proc = await startServerProcess(['--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--warmup', '0'], {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim(),
  });
  t.after(() => proc.kill('SIGKILL'));
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const logged = () =>
    proc
      .output()
      .split('\n')
      .filter((l) => l.includes(MSG))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  proc.child.kill('SIGUSR2');
  await waitFor(() => logged().length === 1 || exited, 'the first rejection logged');
  proc.child.kill('SIGUSR2');
  await waitFor(() => logged().length === 2 || exited, 'the second rejection logged');
  assert.equal(exited, false, proc.output());

  const [first, second] = logged();
  assert.equal(first!.level, 'error');
  assert.equal(first!.msg, MSG);
  // err has one shape on every line: {type, message, stack?}
  const e1 = first!.err as Record<string, unknown>;
  assert.deepEqual([e1.type, e1.message], ['Error', 'boom from a background task'], 'the first line of the message');
  assert.match(String(e1.stack), /reject-on-usr2\.mjs/);
  assert.equal(first!.stack, undefined, 'the stack is in err, not beside it');
  assert.deepEqual(second!.err, { type: 'object', message: '{"code":42}', code: '42' }, 'a rejection that is not an Error');

  // still serving: probes, metrics, admissions
  assert.equal((await probeGet(proc.probePort, '/healthz')).status, 200);
  assert.match((await probeGet(proc.probePort, '/metrics')).text, /^kagenti_webhook_unhandled_rejections_total 2$/m);
  assert.deepEqual(await admit(proc.port, certs.caCert, false), { ok: true });
});
