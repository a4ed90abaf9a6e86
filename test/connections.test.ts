// The connection guard (webhook/connections.ts) on a real HTTPS server: quiet connections are closed after
// quietMs and not before, at the cap the longest-idle quiet connection makes room, keep-alive connections that
// carry requests are left alone, a new connection is refused only when every open one is busy, and with requestMs
// a request still in progress that long is ended (408 when its answer has not started).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { CloseReason, ConnectionLimits } from '../webhook/connections.ts';
import { guardConnections } from '../webhook/connections.ts';
import { SERVER_NAME, testCerts, within } from './helpers.ts';

interface Guarded {
  port: number;
  ca: string;
  closed: CloseReason[];
  guard: ReturnType<typeof guardConnections>;
  /** requests held open until answered */
  held: (() => void)[];
  /** resolves once the server holds `n` requests (its handler ran for each): the signal that it saw them */
  holding(n: number): Promise<void>;
  /** resolves once the server has finished `n` TLS handshakes (the guard has seen each as TLS) */
  secured(n: number): Promise<void>;
  /** every client socket, destroyed by close() */
  clients: net.Socket[];
  close(): Promise<void>;
}

async function guarded(limits: Omit<ConnectionLimits, 'onClose'>): Promise<Guarded> {
  const certs = await testCerts();
  const held: (() => void)[] = [];
  // what the tests wait for the server to have done, checked whenever it does something
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const w of [...waiters]) w();
  };
  const when = (cond: () => boolean, what: string) =>
    within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (!cond()) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
      what,
    );
  const hold = (answer: () => void) => {
    held.push(answer);
    changed();
  };
  const server = https.createServer({ cert: certs.tlsCert, key: certs.tlsKey }, (req, res) => {
    const answer = () => res.end('ok');
    if (req.url === '/hold') hold(answer);
    else if (req.url === '/partial') {
      // the answer starts and is finished only when released
      res.write('part');
      hold(answer);
    } else answer();
  });
  const closed: CloseReason[] = [];
  const guard = guardConnections(server, { ...limits, onClose: (r) => closed.push(r) });
  // after the guard's own listener: counted once the guard knows the connection as TLS
  let secured = 0;
  server.on('secureConnection', () => {
    secured++;
    changed();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  const clients: net.Socket[] = [];
  return {
    port,
    ca: certs.caCert,
    closed,
    guard,
    held,
    holding: (n) => when(() => held.length >= n, `the server to hold ${n} requests`),
    secured: (n) => when(() => secured >= n, `the server to finish ${n} TLS handshakes`),
    clients,
    close: async () => {
      guard.stop();
      server.closeAllConnections();
      for (const s of clients) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Client {
  socket: tls.TLSSocket;
  /** resolves with ms from connect to close */
  closed: Promise<number>;
  isOpen(): boolean;
  /** one HTTP/1.1 keep-alive request; resolves when the answer arrives (not for /hold) */
  request(path?: string): Promise<void>;
  /** everything the server has sent so far */
  received(): string;
}

function tlsClient(g: Guarded): Promise<Client> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: g.port, ca: g.ca, servername: SERVER_NAME }, () => {
      g.clients.push(socket);
      let open = true;
      const closed = new Promise<number>((r) => socket.once('close', () => ((open = false), r(performance.now() - started))));
      let buf = '';
      let all = '';
      socket.setEncoding('utf8');
      const waiters: (() => void)[] = [];
      socket.on('data', (d: string) => {
        all += d;
        buf += d;
        while (buf.includes('\r\n\r\nok')) {
          buf = buf.slice(buf.indexOf('\r\n\r\nok') + 6);
          waiters.shift()?.();
        }
      });
      resolve({
        socket,
        closed,
        isOpen: () => open,
        received: () => all,
        request: (path = '/') =>
          new Promise<void>((res) => {
            waiters.push(res);
            socket.write(`GET ${path} HTTP/1.1\r\nHost: ${SERVER_NAME}\r\n\r\n`);
          }),
      });
    });
    socket.once('error', reject);
  });
}

function tcpClient(g: Guarded): Promise<{ socket: net.Socket; closed: Promise<number> }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: g.port }, () => {
      g.clients.push(socket);
      socket.on('error', () => {});
      resolve({ socket, closed: new Promise((r) => socket.once('close', () => r(performance.now() - started))) });
    });
    socket.once('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a connection that sends no request is closed after quietMs, not before; one that does is kept', async (t) => {
  const g = await guarded({ maxConnections: 100, quietMs: 400, sweepMs: 20 });
  t.after(() => g.close());
  const served = await tlsClient(g);
  await served.request();
  const quietTls = await tlsClient(g);
  const quietTcp = await tcpClient(g); // never starts TLS
  const [tlsMs, tcpMs] = await within(Promise.all([quietTls.closed, quietTcp.closed]), 'the quiet connections to close');
  for (const ms of [tlsMs, tcpMs]) assert.ok(ms >= 380 && ms < 1500, `closed after ${Math.round(ms)} ms, expected 400 ms plus a sweep`);
  // The served connection is matched to its TCP connection (Node keeps it in TLSSocket._parent): were it not,
  // its request would not count and the sweep would have closed it as quiet too.
  await sleep(600);
  assert.ok(served.isOpen(), 'a keep-alive connection that carried a request stays open past quietMs');
  await served.request();
  assert.deepEqual(g.closed, ['quiet', 'quiet']);
  assert.equal(g.guard.open(), 1);
  served.socket.destroy();
});

test('at the cap, a new connection closes the longest-idle quiet one; busy and keep-alive ones stay', async (t) => {
  const g = await guarded({ maxConnections: 5, quietMs: 60_000 });
  t.after(() => g.close());
  const keepAlive = await tlsClient(g);
  await keepAlive.request();
  const busy = await tlsClient(g);
  void busy.request('/hold');
  await g.holding(1);
  const quiet = [await tlsClient(g), await tlsClient(g), await tlsClient(g)];
  assert.equal(g.guard.open(), 5);
  const newcomers: Client[] = [];
  for (let i = 0; i < 3; i++) {
    newcomers.push(await tlsClient(g));
    // the oldest quiet connection went first, then the next
    assert.equal(await within(quiet[i]!.closed.then(() => true), `quiet connection ${i} to be evicted`), true);
  }
  assert.deepEqual(g.closed, ['evicted', 'evicted', 'evicted']);
  assert.ok(keepAlive.isOpen() && busy.isOpen(), 'the keep-alive and the busy connection are not evicted while quiet ones remain');
  assert.equal(g.guard.open(), 5);
  // Without quiet connections left (the newcomers send requests), the keep-alive one idle longest is next.
  for (const c of newcomers) await c.request();
  await tlsClient(g);
  await within(keepAlive.closed, 'the keep-alive connection to be evicted');
  assert.ok(busy.isOpen(), 'a connection with a request in progress is never evicted');
  g.held.splice(0).forEach((answer) => answer());
});

test('among keep-alive connections, the one idle longest makes room, not the one that connected first', async (t) => {
  const g = await guarded({ maxConnections: 2, quietMs: 60_000 });
  t.after(() => g.close());
  const older = await tlsClient(g);
  const newer = await tlsClient(g);
  await older.request();
  await newer.request();
  await sleep(20);
  await older.request(); // the connection that opened first is now the one idle the shortest
  await tlsClient(g);
  await within(newer.closed, 'the connection idle longest to be evicted');
  assert.ok(older.isOpen(), 'the connection that carried the latest request stays');
  assert.deepEqual(g.closed, ['evicted']);
});

test('when every open connection has a request in progress, a new connection is refused', async (t) => {
  const g = await guarded({ maxConnections: 2, quietMs: 60_000 });
  t.after(() => g.close());
  const a = await tlsClient(g);
  const b = await tlsClient(g);
  void a.request('/hold');
  void b.request('/hold');
  await g.holding(2);
  const refused = await new Promise<boolean>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: g.port, ca: g.ca, servername: SERVER_NAME });
    g.clients.push(s);
    s.once('secureConnect', () => resolve(false));
    s.once('error', () => resolve(true));
    s.once('close', () => resolve(true));
  });
  assert.equal(refused, true);
  assert.deepEqual(g.closed, ['refused']);
  assert.ok(a.isOpen() && b.isOpen());
  g.held.splice(0).forEach((answer) => answer());
});

test('at the cap with every connection busy, one whose request has run longer than quietMs makes room', async (t) => {
  // a client that sends headers and trickles its body (or never reads its answer) is busy, not idle
  const g = await guarded({ maxConnections: 2, quietMs: 300 });
  t.after(() => g.close());
  const stuck = await tlsClient(g);
  void stuck.request('/hold');
  await sleep(400);
  const fresh = await tlsClient(g);
  void fresh.request('/hold');
  await g.holding(2);
  const newcomer = await tlsClient(g);
  await within(stuck.closed, 'the stuck connection to be evicted');
  assert.deepEqual(g.closed, ['evicted']);
  assert.ok(fresh.isOpen() && newcomer.isOpen(), 'a request younger than quietMs is not cut');
  g.held.splice(0).forEach((answer) => answer());
});

test('endQuiet ends connections that finished TLS and sent nothing, and leaves the others', async (t) => {
  const g = await guarded({ maxConnections: 10, quietMs: 60_000 });
  t.after(() => g.close());
  const served = await tlsClient(g);
  await served.request();
  const quiet = await tlsClient(g);
  await g.secured(2); // the server finishes its side of the handshake just after the client
  g.guard.endQuiet();
  await within(quiet.closed, 'endQuiet to end the quiet connection');
  await sleep(50);
  assert.ok(served.isOpen());
  served.socket.destroy();
});

test('with requestMs, a request still in progress that long is answered 408 and closed; a younger one is kept', async (t) => {
  const g = await guarded({ maxConnections: 10, quietMs: 60_000, requestMs: 300, sweepMs: 20 });
  t.after(() => g.close());
  // headers, then part of a body that never ends: the request stays in progress
  const trickler = await tlsClient(g);
  const sent = performance.now();
  trickler.socket.write(`POST /hold HTTP/1.1\r\nHost: ${SERVER_NAME}\r\nContent-Length: 100\r\n\r\n{"a":`);
  await sleep(150);
  const younger = await tlsClient(g);
  void younger.request('/hold');
  await within(trickler.closed, 'the trickling request to be ended');
  assert.ok(performance.now() - sent >= 300, 'closed before requestMs');
  assert.match(trickler.received(), /^HTTP\/1\.1 408 Request Timeout\r\nContent-Type: application\/json; charset=utf-8\r\n/);
  // a JSON error, as every other 4xx of the port
  assert.deepEqual(JSON.parse(trickler.received().split('\r\n\r\n')[1]!), { error: 'the request took too long to arrive' });
  assert.deepEqual(g.closed, ['request-timeout']);
  assert.ok(younger.isOpen(), 'a request younger than requestMs is not cut');
  await within(younger.closed, 'the younger request to be ended');
  assert.deepEqual(g.closed, ['request-timeout', 'request-timeout']);
});

test('with requestMs, a request whose answer has started and never ends is closed without a second status line', async (t) => {
  // a client that never reads looks like this to the server: its answer cannot finish
  const g = await guarded({ maxConnections: 10, quietMs: 60_000, requestMs: 200, sweepMs: 20 });
  t.after(() => g.close());
  const c = await tlsClient(g);
  void c.request('/partial');
  await within(c.closed, 'the unfinished answer to be ended');
  assert.match(c.received(), /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(c.received(), /408/);
  assert.deepEqual(g.closed, ['request-timeout']);
});

test('without requestMs, the guard leaves requests in progress to Node', async (t) => {
  const g = await guarded({ maxConnections: 10, quietMs: 60_000, sweepMs: 20 });
  t.after(() => g.close());
  const c = await tlsClient(g);
  void c.request('/hold');
  await sleep(300);
  assert.ok(c.isOpen());
  assert.deepEqual(g.closed, []);
  g.held.splice(0).forEach((answer) => answer());
});

test('within (the bound on the waits above): a wait that never ends fails naming what it waited for; one that ends gives its value', async () => {
  await assert.rejects(within(new Promise(() => {}), 'a close that never comes', 50), /^Error: gave up waiting for a close that never comes after 0\.05 s$/);
  assert.equal(await within(Promise.resolve(7), 'a value'), 7);
});
