// The floor for the benchmarks: a bare node:https server that reads the body, parses it as JSON and answers a
// minimal allowed AdmissionReview. No framework, no logging, no metrics: whatever the webhook costs above this
// is the webhook's own overhead. Run as a separate process, like the webhook under test:
//   node bench/floor.ts --tls-cert FILE --tls-key FILE [--port N] [--host ADDR] [--patch-bytes N]
// prints one JSON line {"port": N} on stdout once listening; started with an IPC channel, it answers the message
// 'connections' with {"connections": N}, the connections it holds.
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const MAX = 3 * 1024 * 1024;

/**
 * `patchBytes` > 0 makes every allowed answer carry a JSONPatch of that many base64 characters (the size the
 * webhook sends), to separate the cost of the response size from the cost of the webhook's own work.
 */
export function createFloorServer(tls: { cert: string | Buffer; key: string | Buffer }, patchBytes = 0): https.Server {
  const patch = patchBytes > 0 ? { patchType: 'JSONPatch', patch: 'A'.repeat(patchBytes) } : {};
  const server = https.createServer({ ...tls, minVersion: 'TLSv1.2' }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX) chunks.push(c);
    });
    req.on('end', () => {
      let uid = '';
      let status = 200;
      try {
        if (size > MAX) throw new Error('too large');
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        uid = typeof body?.request?.uid === 'string' ? body.request.uid : '';
        if (!uid) status = 400;
      } catch {
        status = 400;
      }
      const text =
        status === 200
          ? JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true, ...patch } })
          : '{"error":"bad request"}';
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  server.keepAliveTimeout = 60_000;
  return server;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'patch-bytes': { type: 'string', default: '0' },
    },
  });
  if (!values['tls-cert'] || !values['tls-key']) {
    process.stderr.write('usage: node bench/floor.ts --tls-cert FILE --tls-key FILE [--port N] [--host ADDR]\n');
    process.exit(2);
  }
  const server = createFloorServer({ cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) }, Number(values['patch-bytes']));
  server.listen(Number(values.port), values.host, () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  // bench/run.ts asks a floor it started (with an IPC channel) how many connections it holds: Node's own count,
  // the floor's counterpart of the webhook's kagenti_webhook_open_connections
  if (process.send)
    process.on('message', (m) => {
      if (m === 'connections') server.getConnections((err, n) => process.send!({ connections: err ? -1 : n }));
    });
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
