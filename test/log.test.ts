// The process logger under a saturated event loop: lines must leave as fast as a busy server writes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.ts';

// A child logs 300 lines of 600 bytes per event-loop iteration (180 KB, about what a saturated server logs per
// iteration with warnings in its lines) for 150 iterations, stdout to /dev/null, and reports the largest single write
// the destination made and how many lines it dropped. With sonic-boom's default 16 KiB per write, one write per
// iteration left the pending lines growing to the 32 MiB cap, and lines were dropped. The largest write says which
// way the destination drains whatever the machine's load (how far the writes lag behind depends on it): one write takes
// all that is pending, up to 1 MiB. 150 iterations stay under the cap even if nothing drained meanwhile.
const CHILD = `
import fs from 'node:fs';
import pino from 'pino';
import { createLogger } from ${JSON.stringify(join(ROOT, 'webhook', 'log.ts'))};
let largest = 0;
const write = fs.write;
fs.write = function (fd, buf, ...rest) {
  largest = Math.max(largest, buf.length);
  return write.call(this, fd, buf, ...rest);
};
const log = createLogger('info');
const stream = log[pino.symbols.streamSym];
let dropped = 0;
stream.on('drop', () => dropped++);
const pad = 'x'.repeat(500);
for (let i = 0; i < 150; i++) {
  for (let j = 0; j < 300; j++) log.info({ i, j, pad }, 'admission');
  await new Promise((r) => setImmediate(r));
}
await new Promise((r) => log.flush(r));
process.stderr.write(JSON.stringify({ largestKiB: largest / 1024, dropped }));
`;

test('logger: a burst of lines on a busy event loop drains as it comes (writes take all that is pending, nothing dropped)', () => {
  const out = openSync('/dev/null', 'w');
  try {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], { cwd: ROOT, stdio: ['ignore', out, 'pipe'], encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const { largestKiB, dropped } = JSON.parse(r.stderr.trim().split('\n').pop()!);
    assert.equal(dropped, 0, 'lines dropped');
    // at least one iteration's lines (180 KB) in one write; sonic-boom's default would cap every write at 16 KiB
    assert.ok(largestKiB >= 150 && largestKiB <= 1024, `largest write ${largestKiB.toFixed(1)} KiB`);
  } finally {
    closeSync(out);
  }
});

// A child logs 40 MiB of lines to a stdout pipe nobody reads: past the 32 MiB of pending lines, lines are dropped,
// and kagenti_webhook_log_lines_dropped_total counts them (nothing else can say so: the log is what is stuck).
const STUCK = `
import { createLogger } from ${JSON.stringify(join(ROOT, 'webhook', 'log.ts'))};
import { registry } from ${JSON.stringify(join(ROOT, 'webhook', 'metrics.ts'))};
const log = createLogger('info');
const pad = 'x'.repeat(1000);
for (let i = 0; i < 40; i++) {
  for (let j = 0; j < 1000; j++) log.info({ i, j, pad }, 'admission');
  await new Promise((r) => setImmediate(r));
}
const m = await registry.getSingleMetric('kagenti_webhook_log_lines_dropped_total').get();
process.stderr.write(JSON.stringify({ dropped: m.values[0]?.value ?? 0 }) + '\\n');
`;

test('logger: lines dropped behind a stuck stdout are counted in kagenti_webhook_log_lines_dropped_total', async () => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', STUCK], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  // stdout is never read: the pipe fills and stays full (so the child cannot flush at exit either: it is killed)
  let err = '';
  const report = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => resolve(''), 60_000);
    child.stderr.on('data', (d) => {
      err += d;
      if (err.includes('}\n')) {
        clearTimeout(timer);
        resolve(err);
      }
    });
  });
  child.kill('SIGKILL');
  child.stdout.destroy();
  assert.ok(report, `no report from the child: ${err}`);
  const { dropped } = JSON.parse(report.trim().split('\n').pop()!);
  // 40,000 lines of about 1.1 KB, at most 32 MiB (plus what the pipe took) pending: thousands dropped, all counted
  assert.ok(dropped > 5000 && dropped < 40000, `dropped ${dropped}`);
});
