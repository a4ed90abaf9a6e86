// The admission listener's budget for request bodies held at once (webhook/limits.ts, MAX_HELD_BODY_BYTES):
// over it, the connection that has been sending a body the longest is closed; bodies that completed or were
// abandoned stop counting. Plain HTTP and a small budget here, so the test sends kilobytes, not 64 MiB
// (test/abuse.test.ts checks the shipped budget against a real server process).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { defaultConfig } from '../webhook/config.ts';
import { silentLogger } from '../webhook/log.ts';
import { createAdmissionListener } from '../webhook/server.ts';
import type { ValidationService } from '../webhook/validation.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits for a connection to be closed, failing after 5 s instead of hanging the run. */
const closedSoon = (c: { closed: Promise<void> }, what: string) =>
  Promise.race([c.closed, sleep(5_000).then(() => assert.fail(`${what} was not closed`))]);

async function budgeted(bodyBudget: number) {
  let cuts = 0;
  const listener = createAdmissionListener({
    config: defaultConfig(),
    log: silentLogger(),
    validation: {} as ValidationService, // never reached: no body here is a valid AdmissionReview
    ready: () => ({ ready: true, detail: {} }),
    bodyBudget,
    onBodyCut: () => cuts++,
  });
  const server = http.createServer(listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    cuts: () => cuts,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
    /** A client that declares a body of `declared` bytes and sends `sent` of them, then stalls. */
    async stall(declared: number, sent: number) {
      const socket = net.connect(port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      let answer = '';
      socket.on('data', (d) => (answer += d.toString()));
      socket.on('error', () => {});
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      let open = true;
      void closed.then(() => (open = false));
      socket.write(`POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`);
      socket.write('x'.repeat(sent));
      await sleep(60); // the server has read what was sent
      return {
        isOpen: () => open,
        closed,
        answer: () => answer,
        finish: async () => {
          socket.write('x'.repeat(declared - sent));
          for (let i = 0; i < 100 && !answer.includes('\r\n\r\n'); i++) await sleep(10);
        },
        abandon: async () => {
          socket.destroy();
          await closed;
          await sleep(20);
        },
      };
    },
  };
}

test('over the body budget, the connection sending a body the longest is cut; finished and abandoned bodies stop counting', async (t) => {
  const b = await budgeted(100_000);
  t.after(() => b.close());
  const a = await b.stall(60_000, 40_000);
  const c2 = await b.stall(60_000, 40_000);
  assert.equal(b.cuts(), 0, '80,000 bytes held: under the budget');
  const c3 = await b.stall(60_000, 40_000);
  await closedSoon(a, 'the oldest body');
  assert.equal(b.cuts(), 1, '120,000 bytes: the oldest body is cut');
  assert.ok(c2.isOpen() && c3.isOpen(), 'the younger bodies stay');

  // A body that completes is answered (here: 400, not JSON) and releases its bytes.
  await c2.finish();
  assert.match(c2.answer(), /^HTTP\/1\.1 400 /);
  const c4 = await b.stall(60_000, 40_000);
  assert.equal(b.cuts(), 1, 'c3 and c4 hold 80,000 bytes: nothing cut');

  // An abandoned body releases its bytes too.
  await c3.abandon();
  const c5 = await b.stall(60_000, 55_000);
  assert.equal(b.cuts(), 1, 'c4 and c5 hold 95,000 bytes: nothing cut');
  assert.ok(c4.isOpen() && c5.isOpen());

  // Over the budget again: c4 is now the oldest, and the newcomer is never the one cut.
  const c6 = await b.stall(60_000, 20_000);
  await closedSoon(c4, 'c4, now the oldest body');
  assert.equal(b.cuts(), 2);
  assert.ok(c5.isOpen() && c6.isOpen());
});

test('requests that each send a whole body never touch the budget, however many in a row', async (t) => {
  const b = await budgeted(50_000);
  t.after(() => b.close());
  for (let i = 0; i < 20; i++) {
    const c = await b.stall(30_000, 10_000);
    await c.finish();
    assert.match(c.answer(), /^HTTP\/1\.1 400 /);
  }
  assert.equal(b.cuts(), 0);
});
