// Test support: run the real `kagenti-webhook serve` process and drive a steady admission load at it.
// Used by tls-reload.test.ts and shutdown.test.ts. (Needs dist/: `npm test` builds it first.)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { BIN, podCreateRequest, ROOT, SERVER_NAME } from './helpers.ts';

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  probePort: number;
  /** Everything the process wrote to stdout/stderr so far. */
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export function probeGet(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `node bin/kagenti-webhook.js serve ARGS --host 127.0.0.1 --port P --probe-port Q --cluster none`
 * on free ports and waits until its probe port answers /healthz.
 */
export async function startServerProcess(args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let probePort = await freePort();
    while (probePort === port) probePort = await freePort();
    const child = spawn(
      process.execPath,
      [BIN, 'serve', ...args, '--host', '127.0.0.1', '--port', String(port), '--probe-port', String(probePort), '--cluster', 'none'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KUBECONFIG: '/nonexistent', ...env } },
    );
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    let dead = false;
    void exited.then(() => (dead = true));
    const deadline = Date.now() + 30_000;
    while (!dead && Date.now() < deadline) {
      try {
        const r = await probeGet(probePort, '/healthz');
        if (r.status === 200) {
          return { child, port, probePort, output: () => out, exited, kill: (s = 'SIGTERM') => void child.kill(s) };
        }
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    if (!dead) child.kill('SIGKILL');
    await exited;
    // Another process may have taken a port between our probe and the server's listen: try again.
    if (/in use/.test(out) && attempt < 3) continue;
    throw new Error(`server did not start: ${out.trim().split('\n').slice(-3).join(' | ')}`);
  }
}

export interface LoadStats {
  sent: number;
  ok: number;
  /** Requests that got no response, or a wrong one (status, uid). */
  failures: string[];
  /** Requests whose connection the server never accepted (refused, or dropped before the TLS handshake). */
  refused: number;
  /** Serial numbers of the server certificates seen on new connections, in order. */
  serials: string[];
}

/** An AdmissionReview for a small agent pod (what the ReplicaSet controller sends), as a JSON body. */
export function reviewBody(uid: string, pod: Record<string, unknown> = agentPod('weather-agent')): string {
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...podCreateRequest(pod, 'team-a'), uid } });
}

export function agentPod(name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: `${name}-`, namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' } },
    spec: { serviceAccountName: name, containers: [{ name: 'agent', image: 'ghcr.io/example/agent:1.0' }] },
  };
}

/** One AdmissionReview POST to /mutate; resolves with what happened, never rejects. */
export function admit(
  port: number,
  ca: string | string[],
  agent: https.Agent | false,
  onCert?: (serial: string) => void,
): Promise<{ ok: true } | { ok: false; refused: boolean; why: string }> {
  const uid = randomUUID();
  const payload = reviewBody(uid);
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        servername: SERVER_NAME,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => resolve({ ok: false, refused: false, why: `response error: ${err.message}` }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return resolve({ ok: false, refused: false, why: `HTTP ${res.statusCode}: ${text.slice(0, 200)}` });
          try {
            const body = JSON.parse(text) as { response?: { uid?: string } };
            if (body.response?.uid !== uid) return resolve({ ok: false, refused: false, why: `uid mismatch: ${text.slice(0, 200)}` });
          } catch {
            return resolve({ ok: false, refused: false, why: `not JSON: ${text.slice(0, 200)}` });
          }
          resolve({ ok: true });
        });
      },
    );
    let handshaken = false;
    req.on('socket', (socket) => {
      const tls = socket as TLSSocket;
      if (req.reusedSocket) {
        handshaken = true;
        return;
      }
      tls.once('secureConnect', () => {
        handshaken = true;
        const serial = tls.getPeerCertificate().serialNumber;
        if (serial && onCert) onCert(serial);
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // A connection the server never took in (refused, or dropped from the accept backlog when the
      // listener closed, before the TLS handshake) was not accepted: not a lost request.
      const refused = err.code === 'ECONNREFUSED' || !handshaken;
      resolve({ ok: false, refused, why: `${err.code ?? ''} ${err.message}${req.reusedSocket ? ' (reused keep-alive socket)' : ''}` });
    });
    req.end(payload);
  });
}

/**
 * A steady stream: `fresh` workers open a new TLS connection per request, `keepAlive` workers reuse
 * connections. Runs until stop() is called.
 */
export function startLoad(opts: { port: number; ca: string | string[]; fresh: number; keepAlive: number }): {
  stats: LoadStats;
  stop(): Promise<LoadStats>;
} {
  const stats: LoadStats = { sent: 0, ok: 0, failures: [], refused: 0, serials: [] };
  let running = true;
  const agent = new https.Agent({ keepAlive: true, maxSockets: opts.keepAlive });
  const worker = async (useAgent: boolean) => {
    while (running) {
      stats.sent++;
      const r = await admit(opts.port, opts.ca, useAgent ? agent : false, (s) => stats.serials.push(s));
      if (r.ok) stats.ok++;
      else if (r.refused) {
        stats.refused++;
        await sleep(5);
      } else stats.failures.push(r.why);
    }
  };
  const workers = [
    ...Array.from({ length: opts.fresh }, () => worker(false)),
    ...Array.from({ length: opts.keepAlive }, () => worker(true)),
  ];
  return {
    stats,
    stop: async () => {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return stats;
    },
  };
}

/** Polls until cond() holds; throws with the description after timeoutMs (a liveness bound, not a timing assertion). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}
