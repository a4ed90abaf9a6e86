// Abusive clients for the benchmark's abuse runs, in a process of their own (its own fds and event loop):
// TLS connections that finish the handshake and send nothing, clients that send part of the headers or of the
// body and stall, and one client that pipelines requests and never reads the answers. Connections the server
// closes are not reopened: the figures show what the server does with what it was sent.
// The idle connections come 100 at a time as fast as the handshakes go (a connection flood), or with
// --arrival-rate N, N per second spread evenly (clients that keep arriving, each costing the server a handshake).
//   node bench/abusers.ts --port N [--idle 10000] [--arrival-rate N] [--stalled 200] [--non-reader]
// Prints {"ready":true,...} once every connection has been attempted, and a last line of counts on SIGTERM.
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { fixture } from './fixtures.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    idle: { type: 'string', default: '10000' },
    'arrival-rate': { type: 'string', default: '0' },
    stalled: { type: 'string', default: '200' },
    'non-reader': { type: 'boolean', default: false },
  },
});
const port = Number(values.port);
const counts = { attempted: 0, handshakes: 0, failed: 0, closedByServer: 0 };
const sockets = new Set<net.Socket>();
let stopping = false;

function open(then?: (s: tls.TLSSocket) => void): Promise<void> {
  counts.attempted++;
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    sockets.add(s);
    s.on('error', () => {});
    s.once('secureConnect', () => {
      counts.handshakes++;
      then?.(s);
      resolve();
    });
    s.once('close', () => {
      sockets.delete(s);
      if (!stopping) counts.closedByServer++;
      resolve();
    });
  });
}

const idle = Number(values.idle);
const stalled = Number(values.stalled);
const arrivalRate = Number(values['arrival-rate']);
if (arrivalRate > 0) {
  // N per second: every 5 ms, open the connections that have come due since the start
  const start = performance.now();
  let opened = 0;
  const pending: Promise<void>[] = [];
  while (opened < idle) {
    const due = Math.min(idle, Math.floor(((performance.now() - start) / 1000) * arrivalRate));
    for (; opened < due; opened++) pending.push(open());
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(pending);
} else {
  // 100 at a time, as fast as the handshakes go
  for (let i = 0; i < idle; i += 100) await Promise.all(Array.from({ length: Math.min(100, idle - i) }, () => open()));
}
for (let i = 0; i < stalled; i++) {
  await open((s) =>
    s.write(
      i % 2 === 0
        ? 'POST /mutate HTTP/1.1\r\nHost: kagenti-webhook\r\nContent-Type: appl'
        : 'POST /mutate HTTP/1.1\r\nHost: kagenti-webhook\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"apiVersion":',
    ),
  );
}
if (values['non-reader']) {
  const body = JSON.stringify(fixture('small').review('never-read'));
  const one = `POST /mutate HTTP/1.1\r\nHost: kagenti-webhook\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  await open((s) => {
    s.pause();
    for (let i = 0; i < 2000; i++) s.write(one);
  });
}
process.stdout.write(`${JSON.stringify({ ready: true, ...counts, open: sockets.size })}\n`);
process.once('SIGTERM', () => {
  stopping = true;
  process.stdout.write(`${JSON.stringify({ ...counts, open: sockets.size })}\n`);
  for (const s of sockets) s.destroy();
  process.exit(0);
});
setInterval(() => {}, 1 << 30);
