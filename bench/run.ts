// `npm run bench`: loads the webhook and a bare node:https floor in the same run, over HTTPS with keep-alive
// (as the API server connects), with realistic AdmissionReviews, and writes the figures to BENCHMARKS.md.
//
// The server under test is the real `bin/kagenti-webhook.js serve` in its own process (info logging as in
// production, to /dev/null), started with the Deployment's NODE_OPTIONS; the floor (bench/floor.ts) is another
// process; autocannon runs here for the closed-loop runs, and each fixed-rate run has a generator process of its
// own (bench/paced-child.ts). Loopback only.
//
//   node bench/run.ts [--duration S] [--connections N] [--throughput-repeats N] [--rate R] [--rate-seconds S] [--rate-repeats N]
//                     [--requests N] [--only LIST] [--fixtures LIST]
//                     [--server bin|module] [--log-level L] [--profile DIR] [--out FILE] [--no-write] [--lean-fixtures]
//                     [--abuse-arrival-rate N] [--abuse-settle-seconds S] [--no-abuse-floors]
//                     [--cluster-state] [--no-memory-cluster-state]
//   node bench/run.ts --summarize-profile FILE.cpuprofile
//
// --only: throughput (16 connections, closed loop; floor, floor+patch, /mutate and /validate in turn, --throughput-repeats
// rounds, default 3, and each ratio is read on the round with the median /mutate ÷ floor), rate (paced, --rate req/s; floor and /mutate --rate-repeats
// times each, default 3, alternating), big (1,500-env pod on one
// connection), memory (--requests N on a fresh server process, default 1,000,000, RSS sampled each second;
// N >= 1,000,000 fills the memory-long section, fewer the memory section; then the same again on a fresh server
// with cluster state, into the memory-cluster-state section, unless --no-memory-cluster-state; growth is judged
// by bench/verdicts.ts), abuse (a fresh server under paced
// /mutate while bench/abusers.ts opens 10,000 idle TLS connections, 200 stalled clients and one that never reads;
// the idle ones 100 at a time as fast as they go, or --abuse-arrival-rate N a second; measured after
// --abuse-settle-seconds, default 12, at the rate, and against a baseline on the same server before them; the
// connections the server holds are polled once a second in each measured window).
// --cluster-state runs every server under test with cluster state, as the Deployment does (`--cluster auto`, with
// KUBECONFIG to bench/apiserver.ts: test/fake-apiserver.ts in a process of its own, a stand-in for the API server
// seeded with a small cluster) instead of `--cluster none`, and writes to the sections named with -cluster-state.
// --lean-fixtures sends the bodies as they were before metadata.managedFields and a real last-applied annotation
// were added to the fixtures (see bench/fixtures.ts), for comparison with older figures.
// --server module runs startServer() from source instead of the built bin (no build needed; type stripping
// costs start-up memory, so memory figures are for `bin` only). --profile DIR starts the server with
// --cpu-prof and prints the profile's self time by area and function. Environment: BENCH_LOG_FILE (server
// stdout, default /dev/null), BENCH_NODE_ARGS (extra node flags for the server, e.g. --trace-gc).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { parseArgs } from 'node:util';
import { ensureDevCertificates } from '../webhook/certs.ts';
import { defaultConfig } from '../webhook/config.ts';
import { mutate } from '../webhook/mutate.ts';
import { FIXTURES, fixture } from './fixtures.ts';
import type { ReviewOptions } from './fixtures.ts';
import { MEMORY_RUN_BOUNDS, growthText, growthWord, judgeGrowth, splitAtHalf } from './verdicts.ts';
import type { GrowthVerdict } from './verdicts.ts';

export const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'kagenti-webhook.js');

// ---------- autocannon (no bundled types: the small part we use) ----------

interface AutocannonRequest {
  method: string;
  path: string;
  body: string;
  headers: Record<string, string>;
}
interface AutocannonOptions {
  url: string;
  connections: number;
  duration?: number;
  amount?: number;
  overallRate?: number;
  pipelining?: number;
  timeout?: number;
  requests?: AutocannonRequest[];
  method?: string;
  body?: string;
  headers?: Record<string, string>;
}
interface AutocannonResult {
  requests: { total: number; average: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  start: Date;
  finish: Date;
}
interface AutocannonInstance {
  on(ev: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
  on(ev: 'done', fn: (r: AutocannonResult) => void): void;
  stop(): void;
}
type Autocannon = (opts: AutocannonOptions, cb: (err: Error | null, r: AutocannonResult) => void) => AutocannonInstance;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

// ---------- processes ----------

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => res(port));
    });
  });
}

export interface Proc {
  child: ChildProcess;
  port: number;
  probePort?: number;
  /** resident set size in bytes, from /proc */
  rss(): number;
  /** CPU time (user + system) the process has used, in seconds, from /proc */
  cpu(): number;
  /**
   * The connections the server says it holds: the webhook's kagenti_webhook_open_connections (its /metrics), a
   * floor's server.getConnections() (asked over IPC); undefined when it did not answer within a second.
   */
  connections(): Promise<number | undefined>;
  stop(): Promise<void>;
}

function rssOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const CLK_TCK = 100; // USER_HZ: /proc/<pid>/stat reports utime and stime in 1/100 s on Linux

function cpuOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

function stopChild(child: ChildProcess, graceMs = 20_000): Promise<void> {
  return new Promise((res) => {
    if (child.exitCode !== null || child.signalCode !== null) return res();
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      res();
    });
    child.kill('SIGTERM');
  });
}

function httpGet(port: number, path: string): Promise<number> {
  return new Promise((res) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode ?? 0));
    });
    req.on('error', () => res(0));
    req.setTimeout(1000, () => req.destroy());
  });
}

export interface Certs {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export async function benchCerts(): Promise<Certs> {
  const dir = join(mkdtempSync(join(os.tmpdir(), 'kagenti-bench-')), 'certs');
  const c = await ensureDevCertificates(dir);
  return { dir, caFile: c.caFile, certFile: c.certFile, keyFile: c.keyFile };
}

export async function startFloor(certs: Certs, patchBytes = 0): Promise<Proc> {
  const args = [join(ROOT, 'bench', 'floor.ts'), '--tls-cert', certs.certFile, '--tls-key', certs.keyFile, '--port', '0', '--patch-bytes', String(patchBytes)];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n')[0];
      if (buf.includes('\n')) res(JSON.parse(line!).port as number);
    });
    child.once('exit', (code) => rej(new Error(`floor server exited with ${code}`)));
  });
  const connections = () =>
    new Promise<number | undefined>((res) => {
      const t = setTimeout(() => done(undefined), 1000);
      const onMessage = (m: { connections?: number }) => done(typeof m?.connections === 'number' && m.connections >= 0 ? m.connections : undefined);
      const done = (n: number | undefined) => {
        clearTimeout(t);
        child.off('message', onMessage);
        res(n);
      };
      child.on('message', onMessage);
      if (!child.connected || !child.send('connections')) done(undefined);
    });
  return { child, port, rss: () => rssOf(child.pid), cpu: () => cpuOf(child.pid), connections, stop: () => stopChild(child) };
}

/** kagenti_webhook_open_connections from the webhook's /metrics (probe port), or undefined. */
async function openConnectionsOf(probePort: number): Promise<number | undefined> {
  const text = await new Promise<string>((res) => {
    const req = http.get({ host: '127.0.0.1', port: probePort, path: '/metrics', agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => (body += d));
      r.on('end', () => res(body));
      r.on('error', () => res(''));
    });
    req.on('error', () => res(''));
    req.setTimeout(1000, () => req.destroy());
  });
  const m = /^kagenti_webhook_open_connections (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * The node flags the shipped Deployment runs the server with (NODE_OPTIONS in manifests/base/deployment.yaml),
 * so the server under test has the same heap configuration as in a cluster.
 */
function deploymentContainerEnv(): { name: string; value?: string }[] {
  const doc = parseYaml(readFileSync(join(ROOT, 'manifests', 'base', 'deployment.yaml'), 'utf8')) as any;
  return doc?.spec?.template?.spec?.containers?.[0]?.env ?? [];
}

export function deploymentNodeOptions(): string[] {
  return (deploymentContainerEnv().find((e) => e.name === 'NODE_OPTIONS')?.value ?? '').split(/\s+/).filter(Boolean);
}

/** deploymentProcessEnv as a command line's prefix (`MALLOC_ARENA_MAX=2 `), for the reports' server line. */
export function envText(): string {
  return Object.entries(deploymentProcessEnv()).map(([k, v]) => `${k}=${v} `).join('');
}

/** The Deployment's container environment with literal values, other than NODE_OPTIONS (passed as node's arguments): MALLOC_ARENA_MAX. */
export function deploymentProcessEnv(): Record<string, string> {
  return Object.fromEntries(deploymentContainerEnv().filter((e) => e.name !== 'NODE_OPTIONS' && typeof e.value === 'string').map((e) => [e.name, e.value!]));
}

export interface WebhookOptions {
  /** `bin`: the real `bin/kagenti-webhook.js serve` (needs `npm run build`); `module`: startServer from source */
  server: 'bin' | 'module';
  logLevel: string;
  /** where the server's stdout (its log lines) goes */
  logFile: string;
  nodeArgs?: string[];
  /**
   * With cluster state: the kubeconfig of the API server stand-in (bench/apiserver.ts); the server runs
   * `--cluster auto` (the Deployment's default) with KUBECONFIG set to it. Without: `--cluster none`.
   */
  kubeconfig?: string;
}

const MODULE_SERVER = `
const [root, certFile, keyFile, port, probePort, level, cluster] = process.argv.slice(1);
const u = (p) => new URL(p, 'file://' + root + '/').href;
const { readFileSync } = await import('node:fs');
const { defaultConfig } = await import(u('webhook/config.ts'));
const { createLogger } = await import(u('webhook/log.ts'));
const { startServer } = await import(u('webhook/server.ts'));
const { startValidation } = await import(u('webhook/validation.ts'));
const config = defaultConfig();
const log = createLogger(level);
const validation = await startValidation({ config, log, cluster });
const server = await startServer({ config, log, validation, host: '127.0.0.1', port: Number(port), probePort: Number(probePort),
  tls: { cert: readFileSync(certFile), key: readFileSync(keyFile) } });
process.once('SIGTERM', async () => { await server.close(1000); await validation.close(); log.flush(); process.exit(0); });
`;

export async function startWebhook(certs: Certs, opts: WebhookOptions): Promise<Proc> {
  const port = await freePort();
  let probePort = await freePort();
  while (probePort === port) probePort = await freePort();
  const out = openSync(opts.logFile, 'w');
  const args =
    opts.server === 'bin'
      ? [
          ...deploymentNodeOptions(),
          ...(opts.nodeArgs ?? []),
          BIN,
          'serve',
          '--tls-cert',
          certs.certFile,
          '--tls-key',
          certs.keyFile,
          '--host',
          '127.0.0.1',
          '--port',
          String(port),
          '--probe-port',
          String(probePort),
          '--cluster',
          opts.kubeconfig ? 'auto' : 'none',
          '--drain-seconds',
          '0',
          '--log-level',
          opts.logLevel,
        ]
      : [...(opts.nodeArgs ?? []), '--input-type=module', '-e', MODULE_SERVER, ROOT, certs.certFile, certs.keyFile, String(port), String(probePort), opts.logLevel, opts.kubeconfig ? 'auto' : 'none'];
  // the bin server runs as the Deployment runs it: its NODE_OPTIONS (above) and its allocator settings
  const env = { ...process.env, ...(opts.server === 'bin' ? deploymentProcessEnv() : {}), ...(opts.kubeconfig ? { KUBECONFIG: opts.kubeconfig } : {}) };
  const child = spawn(process.execPath, args, { stdio: ['ignore', out, 'pipe'], cwd: ROOT, env });
  closeSync(out);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 10_000) stderr += d.toString();
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`webhook server exited with ${child.exitCode}: ${stderr.trim()}`);
    if ((await httpGet(probePort, '/readyz')) === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`webhook server not ready after 30 s: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port, probePort, rss: () => rssOf(child.pid), cpu: () => cpuOf(child.pid), connections: () => openConnectionsOf(probePort), stop: () => stopChild(child) };
}

/** The API server stand-in of the runs with cluster state (bench/apiserver.ts), in a process of its own. */
export interface StandIn {
  child: ChildProcess;
  url: string;
  kubeconfig: string;
  /** objects seeded, by resource (pods, deployments, ...) */
  objects: Record<string, number>;
  stop(): Promise<void>;
}

/**
 * Starts bench/apiserver.ts: test/fake-apiserver.ts (recorded responses, not an API server) seeded with a small
 * cluster, and a kubeconfig for it in a temporary directory.
 */
export async function startApiStandIn(): Promise<StandIn> {
  const dir = mkdtempSync(join(os.tmpdir(), 'kagenti-bench-api-'));
  const kubeconfig = join(dir, 'kubeconfig');
  const child = spawn(process.execPath, [join(ROOT, 'bench', 'apiserver.ts'), '--kubeconfig', kubeconfig], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise<{ url: string; objects: Record<string, number> }>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) res(JSON.parse(buf.split('\n')[0]!));
    });
    child.once('exit', (code) => rej(new Error(`API server stand-in (bench/apiserver.ts) exited with ${code}`)));
  });
  return {
    child,
    url: first.url,
    kubeconfig,
    objects: first.objects,
    stop: async () => {
      await stopChild(child, 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `namespaces: 6, pods: 38, ...`: what the stand-in was seeded with. */
export function standInText(s: StandIn): string {
  return Object.entries(s.objects)
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');
}

// ---------- load ----------

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  seconds: number;
  /** CPU time the server process spent per answered request, microseconds (when measured) */
  cpuUs?: number;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface LoadOptions {
  port: number;
  path?: string;
  body?: string;
  requests?: AutocannonRequest[];
  connections: number;
  duration?: number;
  amount?: number;
  overallRate?: number;
  /** keep per-request latencies (off for the very long runs) */
  latencies?: boolean;
  onResponse?: (status: number, ms: number) => void;
}

/** One autocannon run over HTTPS with keep-alive; latencies are recorded here with sub-ms resolution. */
export function load(o: LoadOptions): Promise<LoadResult> {
  return new Promise((res, rej) => {
    const lat: number[] = [];
    const keep = o.latencies !== false;
    const headers = { 'content-type': 'application/json' };
    const inst = autocannon(
      {
        url: `https://127.0.0.1:${o.port}`,
        connections: o.connections,
        ...(o.amount ? { amount: o.amount } : { duration: o.duration ?? 10 }),
        overallRate: o.overallRate,
        timeout: 10,
        ...(o.requests ? { requests: o.requests } : { method: 'POST', body: o.body, headers, requests: [{ method: 'POST', path: o.path ?? '/mutate', body: o.body!, headers }] }),
      },
      (err, r) => {
        if (err) return rej(err);
        const sorted = Float64Array.from(lat).sort();
        const seconds = (r.finish.getTime() - r.start.getTime()) / 1000;
        res({
          requests: r.requests.total,
          rps: r.requests.total / seconds,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          p999: percentile(sorted, 99.9),
          max: sorted.length ? sorted[sorted.length - 1]! : NaN,
          errors: r.errors,
          non2xx: r.non2xx,
          timeouts: r.timeouts,
          seconds,
        });
      },
    );
    inst.on('response', (_c, status, _b, ms) => {
      if (keep && status === 200) lat.push(ms);
      o.onResponse?.(status, ms);
    });
  });
}

// ---------- open-loop load at a fixed rate ----------

export interface PacedRequest {
  path: string;
  body: string;
}

/**
 * Requests at evenly spaced instants (`rate` per second) over up to `connections` keep-alive HTTPS
 * connections, whether or not earlier ones have been answered. Latency runs from the instant a request was
 * due, so queueing anywhere (client or server) counts. autocannon's own rate limit sends each connection's
 * quota for a second back to back at the start of the second, which measures bursts, not a steady rate.
 */
export function paced(o: {
  port: number;
  requests: PacedRequest[];
  rate: number;
  seconds: number;
  connections: number;
  latencies?: boolean;
  onResponse?: (status: number, ms: number) => void;
}): Promise<LoadResult> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: o.connections, rejectUnauthorized: false });
  const bodies = o.requests.map((r) => ({ path: r.path, body: Buffer.from(r.body) }));
  const total = Math.round(o.rate * o.seconds);
  const intervalNs = 1e9 / o.rate;
  const lat: number[] = [];
  const keep = o.latencies !== false;
  let sent = 0;
  let done = 0;
  let errors = 0;
  let non2xx = 0;
  const start = process.hrtime.bigint();
  return new Promise((resolve) => {
    const finish = () => {
      agent.destroy();
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const sorted = Float64Array.from(lat).sort();
      resolve({
        requests: done,
        rps: done / seconds,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        p999: percentile(sorted, 99.9),
        max: sorted.length ? sorted[sorted.length - 1]! : NaN,
        errors,
        non2xx,
        timeouts: 0,
        seconds,
      });
    };
    const settle = (status: number, due: bigint) => {
      const ms = Number(process.hrtime.bigint() - due) / 1e6;
      if (status === 200) {
        if (keep) lat.push(ms);
      } else if (status > 0) non2xx++;
      else errors++;
      o.onResponse?.(status, ms);
      if (++done === total) finish();
    };
    const fire = (i: number, due: bigint) => {
      const r = bodies[i % bodies.length]!;
      const req = https.request(
        {
          host: '127.0.0.1',
          port: o.port,
          path: r.path,
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': r.body.length },
        },
        (res) => {
          res.on('data', () => {});
          res.on('end', () => settle(res.statusCode ?? 0, due));
          res.on('error', () => settle(0, due));
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => settle(0, due));
      req.end(r.body);
    };
    const tick = () => {
      const elapsed = Number(process.hrtime.bigint() - start);
      const due = Math.min(total, Math.floor(elapsed / intervalNs) + 1);
      while (sent < due) {
        fire(sent, start + BigInt(Math.round(sent * intervalNs)));
        sent++;
      }
      if (sent < total) setTimeout(tick, 1);
    };
    if (total === 0) finish();
    else tick();
  });
}

/** paced() in a child process (bench/paced-child.ts): a clean generator for each fixed-rate run. */
export function pacedIsolated(o: { port: number; requests: PacedRequest[]; rate: number; seconds: number; warmupSeconds: number; connections: number }): Promise<LoadResult> {
  const dir = mkdtempSync(join(os.tmpdir(), 'kagenti-paced-'));
  const file = join(dir, 'options.json');
  writeFileSync(file, JSON.stringify(o));
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bench', 'paced-child.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      rmSync(dir, { recursive: true, force: true });
      if (code !== 0) return reject(new Error(`paced generator exited with ${code}`));
      try {
        resolvePromise(JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult);
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

// ---------- CPU profile summary ----------

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export function summarizeProfile(file: string, top = 30): string {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[] };
  const total = prof.samples.length || 1;
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  const area = (url: string, fn: string) => {
    if (!url) return fn.startsWith('(') ? fn : '(native)';
    const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (nm) return nm[1]!;
    const wh = /\/(webhook|dist)\/([^/]+?)\.(ts|js)$/.exec(url);
    if (wh) return `webhook/${wh[2]}`;
    if (url.startsWith('node:')) return url.split('/')[0]!.replace(/^node:internal.*/, 'node:internal');
    return url;
  };
  for (const n of prof.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'}  ${cf.url.replace(/^file:\/\/.*?\/(node_modules|webhook|dist)\//, '$1/')}:${cf.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + hits);
    const a = area(cf.url, cf.functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + hits);
  }
  const fmt = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  return `self time by area (${total} samples):\n${fmt(byArea, 20)}\n\nself time by function:\n${fmt(byFn, top)}\n`;
}

// ---------- the benchmark ----------

/** Length of the base64 patch /mutate answers for this review (computed in-process with the default config). */
function patchSize(review: Record<string, any>): number {
  const d = mutate(review.request, { config: defaultConfig() });
  return d.response.patch?.length ?? 0;
}

interface Row {
  scenario: string;
  target: string;
  r: LoadResult;
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const int = (v: number) => Math.round(v).toLocaleString('en-US');

function machine(): Record<string, string> {
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    /* not a git checkout */
  }
  return {
    date: new Date().toISOString(),
    cpu: `${os.cpus()[0]?.model ?? 'unknown'} (nproc ${os.availableParallelism()})`,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    commit,
  };
}

/** One round of the throughput runs for a fixture: the four targets in turn. */
interface Round {
  fixture: string;
  floor: LoadResult;
  floorPatch: LoadResult;
  mutate: LoadResult;
  validate: LoadResult;
}

/** A fixture's median round, and every round's /mutate ÷ floor in order. */
interface Ratio extends Round {
  rounds: number[];
}

/** The item whose `key` is the median of the items' (the upper middle one for an even count). */
function medianBy<T>(items: readonly T[], key: (item: T) => number): T {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A round's /mutate ÷ floor. */
const ratioOf = (r: Round): number => r.mutate.rps / r.floor.rps;
/** A run's p99. */
const p99Of = (r: LoadResult): number => r.p99;

function tableRows(rows: Row[]): string {
  const head =
    '| scenario | target | req/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/req | requests | errors/non-2xx |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
  return [
    head,
    ...rows.map(
      ({ scenario, target, r }) =>
        `| ${scenario} | ${target} | ${int(r.rps)} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.p999)} | ${ms(r.max)} | ${r.cpuUs === undefined ? '-' : int(r.cpuUs)} | ${int(r.requests)} | ${r.errors + r.timeouts}/${r.non2xx} |`,
    ),
  ].join('\n');
}

function replaceSection(text: string, name: string, body: string): string {
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${begin}\n${body.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) return text.slice(0, i) + block + text.slice(j + end.length);
  return `${text.trimEnd()}\n\n${block}\n`;
}

export interface MemoryResult {
  requests: number;
  seconds: number;
  errors: number;
  non2xx: number;
  rssStart: number;
  rssMid: number;
  rssEnd: number;
  rssMaxLastHalf: number;
  rssMaxFirstHalf: number;
  /** least-squares slope of RSS over the last half, bytes per 100k requests */
  slopePer100k: number;
  /** the verdict on growth over the last half (bench/verdicts.ts): slope and max-to-max, each against its bound */
  growth: GrowthVerdict;
  samples: { requests: number; rss: number }[];
}

/** N requests (mixed fixtures) at `connections`, sampling the server's RSS once a second. */
export async function memoryRun(proc: Proc, requests: number, connections: number, progress = false, fixtureOptions: ReviewOptions = {}): Promise<MemoryResult> {
  const headers = { 'content-type': 'application/json' };
  const small = JSON.stringify(fixture('small').review(undefined, fixtureOptions));
  const dep = JSON.stringify(fixture('deployment').review(undefined, fixtureOptions));
  const mix: AutocannonRequest[] = [
    { method: 'POST', path: '/mutate', body: small, headers },
    { method: 'POST', path: '/mutate', body: dep, headers },
    { method: 'POST', path: '/validate', body: small, headers },
    { method: 'POST', path: '/mutate', body: small, headers },
  ];
  let done = 0;
  const samples: { requests: number; rss: number }[] = [];
  const rssStart = proc.rss();
  const started = Date.now();
  const timer = setInterval(() => {
    samples.push({ requests: done, rss: proc.rss() });
    if (progress && samples.length % 30 === 0)
      process.stderr.write(`  memory: ${int(done)}/${int(requests)} requests, RSS ${mb(proc.rss())} MB, ${Math.round((Date.now() - started) / 1000)} s\n`);
  }, 1000);
  const r = await load({ port: proc.port, requests: mix, connections, amount: requests, latencies: false, onResponse: () => done++ });
  clearInterval(timer);
  const rssEnd = proc.rss();
  samples.push({ requests: done, rss: rssEnd });
  const { firstHalf, lastHalf } = splitAtHalf(samples, requests);
  // the reading before the first request counts in the first half (a run too short for a reading in it has that one)
  const growth = judgeGrowth([{ requests: 0, rss: rssStart }, ...firstHalf], lastHalf, MEMORY_RUN_BOUNDS);
  return {
    requests: r.requests,
    seconds: r.seconds,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    rssStart,
    rssMid: lastHalf[0]?.rss ?? rssEnd,
    rssEnd,
    rssMaxLastHalf: growth.maxLastHalf,
    rssMaxFirstHalf: growth.maxFirstHalf,
    slopePer100k: growth.slopePerRequest * 100_000,
    growth,
    samples,
  };
}

function thin<T>(xs: T[], n: number): T[] {
  if (xs.length <= n) return xs;
  return Array.from({ length: n }, (_, i) => xs[Math.round((i * (xs.length - 1)) / (n - 1))]!);
}

function memoryTable(m: MemoryResult, connections: number): string {
  const growth = m.rssMaxLastHalf - m.rssMaxFirstHalf;
  return [
    `${int(m.requests)} requests at ${connections} connections in ${Math.round(m.seconds)} s (mix: /mutate small, /mutate deployment, /validate small, /mutate small); errors ${m.errors}, non-2xx ${m.non2xx}.`,
    '',
    '| RSS before | max RSS, first half | RSS at half | max RSS, last half | RSS at end | growth (max last half − max first half) | slope, last half |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${mb(m.rssStart)} MB | ${mb(m.rssMaxFirstHalf)} MB | ${mb(m.rssMid)} MB | ${mb(m.rssMaxLastHalf)} MB | ${mb(m.rssEnd)} MB | ${growth >= 0 ? '+' : ''}${mb(growth)} MB | ${(m.slopePer100k / 1024 / 1024).toFixed(2)} MB per 100k requests |`,
    '',
    `Growth over the last half: **${growthWord(m.growth)}**: ${growthText(m.growth)}.`,
    '',
    'RSS sampled once a second (requests answered so far → MB):',
    '',
    '```',
    thin(m.samples, 24)
      .map((s) => `${String(s.requests).padStart(9)}  ${mb(s.rss)}`)
      .join('\n'),
    '```',
  ].join('\n');
}

// ---------- abusive clients ----------

export interface AbuseResult {
  /** which server the generator's requests went to, and whether the abusers went to it too */
  target: AbuseTarget;
  /** paced /mutate on the same server before any abusive client, past its start-up compiles: the run's baseline */
  before: LoadResult;
  /** paced /mutate while the abusive clients connect */
  during: LoadResult;
  /** paced /mutate once every abusive connection has been attempted */
  after: LoadResult;
  rssIdle: number;
  rssMax: number;
  /** the abusers' counts when ready: connections attempted, TLS handshakes done, still open */
  ready: { attempted: number; handshakes: number; open: number };
  /** at the end: how many the server had closed */
  end: { closedByServer: number; open: number };
  /**
   * Connections open on the server the abusive clients go to (the generator's own included where it is the same
   * server), polled once a second through each measured window: what each window faced.
   */
  connections: { before?: CountStats; during?: CountStats; after?: CountStats };
}

/** min / median / max of a series of counts, and how many there were. */
export interface CountStats {
  min: number;
  median: number;
  max: number;
  samples: number;
}

export function countStats(xs: readonly number[]): CountStats | undefined {
  if (!xs.length) return undefined;
  const sorted = [...xs].sort((a, b) => a - b);
  return { min: sorted[0]!, median: sorted[Math.floor((sorted.length - 1) / 2)]!, max: sorted.at(-1)!, samples: sorted.length };
}

/** `1,984 / 2,000 / 2,016`, or `-` when the server never answered. */
export function countText(c: CountStats | undefined): string {
  return c ? `${int(c.min)} / ${int(c.median)} / ${int(c.max)}` : '-';
}

/** Asks `proc` for its open connections once a second from `afterMs` on, until stopped. */
function pollConnections(proc: Proc, afterMs: number): { stop(): Promise<CountStats | undefined> } {
  const counts: number[] = [];
  let stopped = false;
  const loop = (async () => {
    await new Promise((r) => setTimeout(r, afterMs));
    while (!stopped) {
      const t = Date.now();
      const n = await proc.connections();
      if (n !== undefined && !stopped) counts.push(n);
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - t))));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return countStats(counts);
    },
  };
}

/**
 * `webhook`: the abusive clients and the generator both go to the webhook (the goal's case). `floor`: the same,
 * with the floor in its place: what a bare node:https server gets from the same clients on this machine.
 * `floor-aside`: the generator goes to a floor the abusive clients never touch; they go to a second floor
 * process. What is left is what sharing the machine's CPUs with the flood (its clients and the server they
 * hit) costs a server that does nothing about it, since the attacker here runs on the server's own machine.
 */
export type AbuseTarget = 'webhook' | 'floor' | 'floor-aside';

/** How each target reads in BENCHMARKS.md: where the load goes, where the abusive clients go, and a short name. */
const ABUSE_TARGETS: Record<AbuseTarget, { load: string; abusers: string; short: string }> = {
  webhook: { load: 'the webhook', abusers: 'the webhook', short: 'the webhook' },
  floor: { load: 'the floor', abusers: 'the floor', short: 'the floor with the same clients' },
  'floor-aside': { load: 'the floor', abusers: 'a second floor', short: 'a floor they do not touch' },
};

/**
 * A fresh server, /mutate at `rate` (small pod) from a generator process of its own, and bench/abusers.ts in a
 * third process: `idle` TLS connections that send nothing, `stalled` clients stuck mid-headers or mid-body and
 * one client that pipelines and never reads. First `settleSeconds` at the rate, not measured: a fresh server
 * compiles Node's HTTP code with TurboFan after about 10,000 requests (BENCHMARKS.md, fifth and seventh rounds),
 * which is not what this run is about. Then the same load with no abusive client (the baseline of this run, on
 * this machine at this hour), then while they connect, then once all are in.
 */
export async function abuseRun(o: {
  certs: Certs;
  /** default `webhook` */
  target?: AbuseTarget;
  webhook: WebhookOptions;
  body: string;
  rate: number;
  seconds: number;
  idle: number;
  stalled: number;
  /** idle connections opened per second, evenly; 0: 100 at a time as fast as the handshakes go */
  arrivalRate?: number;
  /** seconds at the rate before anything is measured */
  settleSeconds?: number;
  say?: (s: string) => void;
}): Promise<AbuseResult> {
  const target = o.target ?? 'webhook';
  const proc = target === 'webhook' ? await startWebhook(o.certs, o.webhook) : await startFloor(o.certs);
  const sink = target === 'floor-aside' ? await startFloor(o.certs) : proc;
  const rssIdle = proc.rss();
  let rssMax = rssIdle;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, proc.rss())), 250);
  const requests = [{ path: '/mutate', body: o.body }];
  let abusers: ChildProcess | undefined;
  try {
    if (o.settleSeconds) await pacedIsolated({ port: proc.port, requests, rate: o.rate, seconds: o.settleSeconds, warmupSeconds: 0, connections: 16 });
    // one measured window at the rate, and the connections open on the abusers' server meanwhile (polled from the
    // end of the generator's 2 s warm-up)
    const connections: AbuseResult['connections'] = {};
    const measured = async (which: keyof AbuseResult['connections']) => {
      const poll = pollConnections(sink, 2000);
      try {
        return await pacedIsolated({ port: proc.port, requests, rate: o.rate, seconds: o.seconds, warmupSeconds: 2, connections: 16 });
      } finally {
        connections[which] = await poll.stop();
      }
    };
    const before = await measured('before');
    o.say?.(`  before any abusive client: p50 ${ms(before.p50)}  p99 ${ms(before.p99)}  p99.9 ${ms(before.p999)} ms  err ${before.errors} non2xx ${before.non2xx}; open connections ${countText(connections.before)} (min / median / max)`);
    const child = spawn(process.execPath, [join(ROOT, 'bench', 'abusers.ts'), '--port', String(sink.port), '--idle', String(o.idle), '--arrival-rate', String(o.arrivalRate ?? 0), '--stalled', String(o.stalled), '--non-reader'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    abusers = child;
    const lines: Record<string, number>[] = [];
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
        lines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    const during = await measured('during');
    o.say?.(`  while ${o.idle} idle clients connect: p50 ${ms(during.p50)}  p99 ${ms(during.p99)}  p99.9 ${ms(during.p999)} ms  err ${during.errors} non2xx ${during.non2xx}; open connections ${countText(connections.during)}`);
    while (!lines.some((l) => l.ready)) {
      if (child.exitCode !== null) throw new Error(`abusive clients exited with ${child.exitCode}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ready = lines.find((l) => l.ready)!;
    const after = await measured('after');
    o.say?.(`  after they are in:  p50 ${ms(after.p50)}  p99 ${ms(after.p99)}  p99.9 ${ms(after.p999)} ms  err ${after.errors} non2xx ${after.non2xx}; open connections ${countText(connections.after)}; RSS max ${mb(rssMax)} MB`);
    const n = lines.length;
    child.kill('SIGTERM');
    for (let i = 0; i < 50 && lines.length === n; i++) await new Promise((r) => setTimeout(r, 100));
    const end = lines.at(-1)!;
    return {
      target,
      before,
      during,
      after,
      rssIdle,
      rssMax,
      ready: { attempted: ready.attempted!, handshakes: ready.handshakes!, open: ready.open! },
      end: { closedByServer: end.closedByServer!, open: end.open! },
      connections,
    };
  } finally {
    clearInterval(sampler);
    if (abusers && abusers.exitCode === null) abusers.kill('SIGKILL');
    await proc.stop();
    if (sink !== proc) await sink.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '8' },
      // Paced runs are longer: at 1,000 req/s a p99 over 8 s rests on 80 requests, so one pause of the shared
      // machine decides it; over 20 s it takes 200.
      'rate-seconds': { type: 'string', default: '20' },
      'rate-repeats': { type: 'string', default: '3' },
      'throughput-repeats': { type: 'string', default: '3' },
      connections: { type: 'string', default: '16' },
      rate: { type: 'string', default: '1000' },
      requests: { type: 'string', default: '1000000' },
      only: { type: 'string' },
      fixtures: { type: 'string' },
      server: { type: 'string', default: 'bin' },
      'log-level': { type: 'string', default: 'info' },
      profile: { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'BENCHMARKS.md') },
      // --no-write (allowNegative below): print the figures, leave BENCHMARKS.md alone
      write: { type: 'boolean', default: true },
      'summarize-profile': { type: 'string' },
      'lean-fixtures': { type: 'boolean', default: false },
      // abuse run: idle clients per second (0: 100 at a time, as fast as the handshakes go), and the seconds
      // at the rate before its baseline is measured
      'abuse-arrival-rate': { type: 'string', default: '0' },
      'abuse-settle-seconds': { type: 'string', default: '12' },
      // abuse run: also the floor with the same abusive clients, and a floor beside them (--no-abuse-floors: not)
      'abuse-floors': { type: 'boolean', default: true },
      // every server under test with cluster state (--cluster auto, KUBECONFIG to bench/apiserver.ts, a stand-in for
      // the API server) instead of --cluster none; the memory run then runs that way only
      'cluster-state': { type: 'boolean', default: false },
      // the memory run a second time with cluster state, as the Deployment runs (--no-memory-cluster-state: not)
      'memory-cluster-state': { type: 'boolean', default: true },
    },
    allowNegative: true,
  });
  // --lean-fixtures: the bodies as they were before managedFields and a real last-applied annotation were added
  const fixtureOptions: ReviewOptions = { lean: values['lean-fixtures'] };
  if (values['summarize-profile']) {
    process.stdout.write(summarizeProfile(values['summarize-profile']));
    return;
  }
  const duration = Number(values.duration);
  const rateSeconds = Number(values['rate-seconds']);
  const rateRepeats = Math.max(1, Math.floor(Number(values['rate-repeats'])) || 1);
  const throughputRepeats = Math.max(1, Math.floor(Number(values['throughput-repeats'])) || 1);
  const connections = Number(values.connections);
  const rate = Number(values.rate);
  const requests = Number(values.requests);
  const server = values.server === 'module' ? 'module' : 'bin';
  const only = new Set((values.only ?? 'throughput,rate,big,memory,abuse').split(','));
  if (server === 'bin' && !existsSync(join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is missing: run `npm run build` first');

  const say = (s: string) => process.stderr.write(`${s}\n`);
  const certs = await benchCerts();
  const logFile = process.env.BENCH_LOG_FILE ?? '/dev/null';
  // BENCH_NODE_ARGS: extra node flags for the server under test (e.g. --trace-gc, --no-turbo-inlining)
  const nodeArgs = [
    ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${resolve(values.profile)}`] : []),
    ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ];
  const floor = await startFloor(certs);
  // the same floor, answering with a patch as large as the webhook's for the small pod
  const patchBytes = patchSize(fixture('small').review(undefined, fixtureOptions));
  const floorPatch = await startFloor(certs, patchBytes);
  // --cluster-state: one API server stand-in for every server under test
  const clusterState = values['cluster-state']!;
  const standIn = clusterState ? await startApiStandIn() : undefined;
  if (standIn) say(`cluster state: API server stand-in (bench/apiserver.ts on test/fake-apiserver.ts; not an API server) at ${standIn.url}: ${standInText(standIn)}`);
  const webhookOptions: WebhookOptions = { server, logLevel: values['log-level']!, logFile, nodeArgs, ...(standIn ? { kubeconfig: standIn.kubeconfig } : {}) };
  const hook = await startWebhook(certs, webhookOptions);
  say(`floor on :${floor.port}, webhook (${server}, ${standIn ? 'with cluster state' : '--cluster none'}) on :${hook.port}, log level ${values['log-level']}, logs to ${logFile}`);

  const rows: Row[] = [];
  const loadStart = os.loadavg()[0]!.toFixed(2);
  const bodies = Object.fromEntries(FIXTURES.map((f) => [f.name, JSON.stringify(f.review(undefined, fixtureOptions))]));
  const warm = async (port: number, path: string, body: string) => {
    await load({ port, path, body, connections, duration: 2, latencies: false });
  };
  const run = async (scenario: string, target: string, port: number, path: string, body: string, opts: Partial<LoadOptions>) => {
    const proc = port === floor.port ? floor : port === floorPatch.port ? floorPatch : hook;
    const cpu0 = proc.cpu();
    const r = await load({ port, path, body, connections, duration, ...opts });
    r.cpuUs = ((proc.cpu() - cpu0) / Math.max(1, r.requests)) * 1e6;
    rows.push({ scenario, target, r });
    say(`  ${scenario.padEnd(34)} ${target.padEnd(10)} ${int(r.rps).padStart(7)} req/s  p50 ${ms(r.p50)}  p99 ${ms(r.p99)}  p99.9 ${ms(r.p999)} ms  cpu ${int(r.cpuUs ?? NaN)} us/req  err ${r.errors + r.timeouts} non2xx ${r.non2xx}`);
    return r;
  };

  const ratios: Ratio[] = [];
  let rateRows: { fixture: string; floor: LoadResult[]; mutate: LoadResult[] }[] = [];
  let big: { one: LoadResult; many: LoadResult; floorOne: LoadResult } | undefined;
  /** the memory runs: `--cluster none` (the round-by-round series) and with cluster state */
  const mems: { withState: boolean; result: MemoryResult; standIn?: string }[] = [];
  let abuse: AbuseResult | undefined;
  const abuseFloors: AbuseResult[] = [];
  const abuseIdle = 10_000;
  const abuseStalled = 200;
  const abuseArrivalRate = Math.max(0, Number(values['abuse-arrival-rate']) || 0);
  const abuseSettle = Math.max(0, Number(values['abuse-settle-seconds']) || 0);
  const arrivalText =
    abuseArrivalRate > 0 ? `${int(abuseArrivalRate)} a second, evenly` : '100 handshakes at a time, as fast as they go';
  let rssAfterRuns: number | undefined;
  try {
    if (only.has('throughput')) {
      say(`throughput: ${connections} connections, ${duration} s each`);
      for (const f of FIXTURES.filter((x) => !values.fixtures || values.fixtures.split(',').includes(x.name))) {
        const body = bodies[f.name]!;
        // The four targets in turn, throughputRepeats rounds: a floor run and the /mutate run after it are seconds
        // apart, so each round's ratio sees about the same machine, and the goal is read on the median round (on
        // this shared machine the same server's req/s moves by a fifth from one minute to the next).
        const rounds: Round[] = [];
        for (let i = 1; i <= throughputRepeats; i++) {
          const sc = `${f.name}, ${connections} conns${throughputRepeats > 1 ? ` (${i}/${throughputRepeats})` : ''}`;
          const first = i === 1; // warm-up before the first round only: the servers stay warm between rounds
          if (first) await warm(floor.port, '/', body);
          const fl = await run(sc, 'floor', floor.port, '/', body, {});
          if (first) await warm(floorPatch.port, '/', body);
          const fp = await run(sc, 'floor+patch', floorPatch.port, '/', body, {});
          if (first) await warm(hook.port, '/mutate', body);
          const mu = await run(sc, '/mutate', hook.port, '/mutate', body, {});
          if (first) await warm(hook.port, '/validate', body);
          const va = await run(sc, '/validate', hook.port, '/validate', body, {});
          rounds.push({ fixture: f.name, floor: fl, floorPatch: fp, mutate: mu, validate: va });
        }
        ratios.push({ ...medianBy(rounds, ratioOf), rounds: rounds.map(ratioOf) });
      }
    }
    if (only.has('rate')) {
      say(`fixed rate: ${rate} req/s, evenly spaced (open loop), up to ${connections} keep-alive connections, ${rateSeconds} s each after 2 s at the same rate`);
      const atRate = async (sc: string, target: string, proc: Proc, path: string, body: string) => {
        const cpu0 = proc.cpu();
        const r = await pacedIsolated({ port: proc.port, requests: [{ path, body }], rate, seconds: rateSeconds, warmupSeconds: 2, connections });
        // the CPU reading spans the child's warm-up too: divide by every request it sent
        r.cpuUs = ((proc.cpu() - cpu0) / Math.max(1, r.requests + rate * 2)) * 1e6;
        rows.push({ scenario: sc, target, r });
        say(`  ${sc.padEnd(34)} ${target.padEnd(10)} ${int(r.rps).padStart(7)} req/s  p50 ${ms(r.p50)}  p99 ${ms(r.p99)}  p99.9 ${ms(r.p999)} ms  cpu ${int(r.cpuUs)} us/req  err ${r.errors} non2xx ${r.non2xx}`);
        return r;
      };
      for (const name of ['small', 'deployment']) {
        const body = bodies[name]!;
        const sc = `${name}, ${rate} req/s paced`;
        // Floor and /mutate alternate, rateRepeats runs each: one 20 s run's p99 rests on its 200 slowest
        // requests, and on this shared machine the same server varies by a factor of two from run to run.
        const fl: LoadResult[] = [];
        const mu: LoadResult[] = [];
        for (let i = 1; i <= rateRepeats; i++) {
          const n = rateRepeats > 1 ? ` (${i}/${rateRepeats})` : '';
          fl.push(await atRate(sc + n, 'floor', floor, '/', body));
          mu.push(await atRate(sc + n, '/mutate', hook, '/mutate', body));
        }
        await atRate(sc, '/validate', hook, '/validate', body);
        rateRows.push({ fixture: name, floor: fl, mutate: mu });
      }
    }
    if (only.has('big')) {
      say('1,500 env vars: 1 connection (latency of one request), then 16 connections');
      const body = bodies.env1500!;
      const floorOne = await run('env1500, 1 conn', 'floor', floor.port, '/', body, { connections: 1 });
      const one = await run('env1500, 1 conn', '/mutate', hook.port, '/mutate', body, { connections: 1 });
      await run('env1500, 1 conn', '/validate', hook.port, '/validate', body, { connections: 1 });
      const many = ratios.find((x) => x.fixture === 'env1500')?.mutate ?? (await run(`env1500, ${connections} conns`, '/mutate', hook.port, '/mutate', body, {}));
      big = { one, many, floorOne };
    }
    if (only.has('memory')) {
      // The goal is about a server that answered N requests of the mix: a fresh process, so the figure does not
      // depend on which other runs came before. The process above is reported too, after all its runs.
      rssAfterRuns = hook.rss();
      // --cluster none (the series kept round by round), then with cluster state as the Deployment runs; with
      // --cluster-state, that way only
      const passes = clusterState ? [true] : values['memory-cluster-state'] ? [false, true] : [false];
      for (const withState of passes) {
        // a stand-in of its own for the memory run with cluster state, unless every server has one (--cluster-state)
        const own = withState && !standIn ? await startApiStandIn() : undefined;
        const api = standIn ?? own;
        try {
          say(
            `memory${withState ? ', with cluster state' : ', --cluster none'}: ${int(requests)} requests at ${connections} connections, on a fresh server process (the one above holds ${mb(rssAfterRuns)} MB after its runs)` +
              (withState ? `; cluster state from an API server stand-in (bench/apiserver.ts on test/fake-apiserver.ts, not an API server): ${standInText(api!)}` : ''),
          );
          const fresh = await startWebhook(certs, { ...webhookOptions, ...(withState ? { kubeconfig: api!.kubeconfig } : { kubeconfig: undefined }) });
          let mem: MemoryResult;
          try {
            mem = await memoryRun(fresh, requests, connections, true, fixtureOptions);
          } finally {
            await fresh.stop();
          }
          mems.push({ withState, result: mem, ...(withState ? { standIn: standInText(api!) } : {}) });
          say(`  RSS ${mb(mem.rssStart)} -> max ${mb(mem.rssMaxFirstHalf)} (first half) -> max ${mb(mem.rssMaxLastHalf)} (last half), ${mb(mem.rssEnd)} MB at the end; errors ${mem.errors}, non2xx ${mem.non2xx}`);
          say(`  ${growthWord(mem.growth)}: ${growthText(mem.growth)}`);
        } finally {
          await own?.stop();
        }
      }
    }
    if (only.has('abuse')) {
      say(`abusive clients: ${int(abuseIdle)} idle TLS connections (${arrivalText}), ${abuseStalled} stalled clients, 1 that never reads; /mutate small at ${rate} req/s, fresh server`);
      // the same abusive clients and load for each target, on fresh processes
      const abuseOn = (target: AbuseTarget) =>
        abuseRun({
          certs,
          target,
          webhook: webhookOptions,
          body: bodies.small!,
          rate,
          seconds: rateSeconds,
          idle: abuseIdle,
          stalled: abuseStalled,
          arrivalRate: abuseArrivalRate,
          settleSeconds: abuseSettle,
          say,
        });
      abuse = await abuseOn('webhook');
      if (values['abuse-floors'])
        for (const target of ['floor', 'floor-aside'] as const) {
          say(`the same abusive clients and load, ${target === 'floor' ? 'against the floor' : 'the load against a floor the abusive clients do not touch (they go to a second floor process)'}`);
          abuseFloors.push(await abuseOn(target));
        }
    }
  } finally {
    await hook.stop();
    await floor.stop();
    await floorPatch.stop();
    await standIn?.stop();
  }
  if (values.profile) {
    const dir = resolve(values.profile);
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    const latest = files.sort().at(-1);
    if (latest) say(`\n${summarizeProfile(join(dir, latest))}`);
  }
  if (!values.write) return;

  // ---------- BENCHMARKS.md ----------
  const m = machine();
  const cmd = `node bench/run.ts ${process.argv.slice(2).join(' ')}`.trim();
  const sections: Record<string, string> = {};
  // --lean-fixtures and --cluster-state runs are kept beside the default ones, not in their place
  const sectionName = (base: string, withState = clusterState) => `${base}${fixtureOptions.lean ? '-lean' : ''}${withState ? '-cluster-state' : ''}`;
  const serverText = standIn
    ? `with cluster state (\`--cluster auto\`, KUBECONFIG to \`bench/apiserver.ts\`: test/fake-apiserver.ts standing in for the API server, not an API server, seeded with ${standInText(standIn)})`
    : '`--cluster none`';
  const hdr = [
    `Run ${m.date} (commit ${m.commit || 'n/a'}): \`${cmd}\``,
    '',
    `- Machine: ${m.cpu}, ${m.memory} RAM, ${m.os}`,
    `- Node ${m.node}; server under test: ${server === 'bin' ? `\`${envText()}node ${deploymentNodeOptions().join(' ')} bin/kagenti-webhook.js serve\` ${serverText} (the Deployment's NODE_OPTIONS and allocator setting)` : `startServer() from source (\`--server module\`) ${serverText}`} with \`--log-level ${values['log-level']}\`, logs to ${logFile}, in its own process; floor: \`bench/floor.ts\` in its own process; load: autocannon 8 in the bench process for the throughput runs, a generator process of its own for each paced run. HTTPS with keep-alive over loopback (127.0.0.1); all three share the ${os.availableParallelism()} CPUs.`,
    `- Load average (1 min) at start ${loadStart}, at end ${os.loadavg()[0]!.toFixed(2)}: other work on the machine shows up as noise in req/s and tail latency; server CPU µs per request is the steadier figure.`,
    `- Latencies: throughput runs as autocannon measures them (send to last byte, closed loop), paced runs from the instant each request was due (open loop, queueing included); sub-millisecond resolution; 2 s warm-up before each throughput target's first run${throughputRepeats > 1 ? `, ${throughputRepeats} rounds of the four targets in turn, and the ratios are read on each fixture's median round (the Webhook vs floor table shows that round; all runs are listed)` : ''}; each paced run is ${rateSeconds} s after 2 s at the same rate${rateRepeats > 1 ? `; floor and /mutate ${rateRepeats} runs each, alternating, and the goal is read on the median run (all runs are listed)` : ''}.`,
  ].join('\n');
  if (ratios.length || rateRows.length || big) {
    const goals: string[] = ['| goal | measured | met |', '| --- | --- | --- |'];
    for (const x of ratios) {
      const ratio = x.mutate.rps / x.floor.rps;
      const all = x.rounds.length > 1 ? `; median of ${x.rounds.length} rounds (${x.rounds.map((r) => r.toFixed(2)).join(' / ')})` : '';
      goals.push(
        `| /mutate throughput ≥ 0.7 × floor, ${x.fixture}, ${connections} conns | ${int(x.mutate.rps)} vs ${int(x.floor.rps)} req/s = **${ratio.toFixed(2)}**${all} | ${ratio >= 0.7 ? 'yes' : 'no'}${all ? ' (median round)' : ''} |`,
      );
    }
    for (const x of rateRows) {
      const mu = medianBy(x.mutate, p99Of);
      const fl = medianBy(x.floor, p99Of);
      const runs = (a: LoadResult[]) => a.map((r) => ms(r.p99)).join(' / ');
      const clean = x.mutate.every((r) => r.errors + r.non2xx === 0);
      goals.push(
        x.mutate.length > 1
          ? `| p99 < 5 ms at ${rate} req/s, /mutate ${x.fixture} | median of ${x.mutate.length} runs: p99 ${ms(mu.p99)} ms (runs ${runs(x.mutate)}); floor ${ms(fl.p99)} ms (runs ${runs(x.floor)}) | ${mu.p99 < 5 && clean ? 'yes' : 'no'} (median run) |`
          : `| p99 < 5 ms at ${rate} req/s, /mutate ${x.fixture} | p99 ${ms(mu.p99)} ms (floor ${ms(fl.p99)} ms) | ${mu.p99 < 5 && clean ? 'yes' : 'no'} |`,
      );
    }
    if (big)
      goals.push(
        `| 1,500-env pod under 20 ms | 1 conn: p50 ${ms(big.one.p50)}, p99 ${ms(big.one.p99)}, max ${ms(big.one.max)} ms; ${connections} conns: p99 ${ms(big.many.p99)} ms | ${big.one.p99 < 20 ? 'yes' : 'no'} (1 conn p99) |`,
      );
    for (const { withState, result: mem } of mems)
      goals.push(
        `| RSS < 150 MB after ${int(mem.requests)} requests, no growth over the last half${withState ? ', with cluster state' : ''} | ${mb(mem.rssEnd)} MB at the end; ${growthText(mem.growth)} | ${mem.rssEnd < 150 * 1024 * 1024 ? 'yes' : 'no'} / ${growthWord(mem.growth)} |`,
      );
    const ratioTable = ratios.length
      ? [
          '| fixture (body bytes) | floor req/s | /mutate req/s | ratio | /validate req/s | ratio | floor+patch req/s | /mutate ÷ floor+patch | p99 floor / /mutate / /validate ms | server CPU µs/req floor / floor+patch / /mutate / /validate |',
          '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
          ...ratios.map(
            (x) =>
              `| ${x.fixture} (${int(bodies[x.fixture]!.length)}) | ${int(x.floor.rps)} | ${int(x.mutate.rps)} | ${(x.mutate.rps / x.floor.rps).toFixed(2)} | ${int(x.validate.rps)} | ${(x.validate.rps / x.floor.rps).toFixed(2)} | ${int(x.floorPatch.rps)} | ${(x.mutate.rps / x.floorPatch.rps).toFixed(2)} | ${ms(x.floor.p99)} / ${ms(x.mutate.p99)} / ${ms(x.validate.p99)} | ${int(x.floor.cpuUs ?? NaN)} / ${int(x.floorPatch.cpuUs ?? NaN)} / ${int(x.mutate.cpuUs ?? NaN)} / ${int(x.validate.cpuUs ?? NaN)} |`,
          ),
        ].join('\n')
      : '';
    sections[sectionName('results')] = [hdr, '', '### Goals', '', goals.join('\n'), '', ratioTable ? `### Webhook vs floor\n\n${ratioTable}\n` : '', '### All runs', '', tableRows(rows)].join('\n');
  }
  for (const { withState, result: mem, standIn: seeded } of mems) {
    const after =
      rssAfterRuns !== undefined && (only.has('throughput') || only.has('rate') || only.has('big'))
        ? `\n\nOn a fresh server process. The process that served the runs above (the 1,500-env pod included) held ${mb(rssAfterRuns)} MB RSS after them.`
        : '\n\nOn a fresh server process.';
    const how = withState
      ? `\n\nWith cluster state, as the Deployment runs (\`serve --cluster auto\`, KUBECONFIG to \`bench/apiserver.ts\`): the API server is test/fake-apiserver.ts standing in for one (recorded responses, not an API server), seeded with ${seeded}, one pod updated every 2 s.`
      : '';
    const body = `Run ${m.date} (commit ${m.commit || 'n/a'}): \`${cmd}\`${after}${how}\n\n${memoryTable(mem, connections)}`;
    // the --cluster none series: memory-long for 1M requests or more, memory below; with cluster state, one section
    sections[withState ? sectionName('memory', true) : fixtureOptions.lean ? 'memory-lean' : mem.requests >= 1_000_000 ? 'memory-long' : 'memory'] = body;
  }
  if (abuse) {
    const a = abuse;
    const ok = (r: LoadResult) => r.p99 < 5 && r.errors + r.non2xx === 0;
    sections[sectionName('abuse')] = [
      `Run ${m.date} (commit ${m.commit || 'n/a'}): \`${cmd}\`. A fresh server (as above); a generator process sends /mutate (small pod) at ${rate} req/s throughout: ${abuseSettle} s not measured (past the fresh server's start-up compiles), then ${rateSeconds} s with no abusive client (after 2 s at the rate: this run's baseline). Then \`bench/abusers.ts\`, in a process of its own, opens ${int(abuseIdle)} TLS connections that send nothing (${arrivalText}), then ${abuseStalled} clients that send half their headers or half their body and stall, then one that pipelines 2,000 requests and never reads; it reopens nothing the server closes. Measured: ${rateSeconds} s while they connect (after 2 s), then ${rateSeconds} s once all are in. The server closes idle connections after its timeout (\`--quiet-seconds\` 5 for one that sends no request header) and the longest-idle past \`--max-connections\` 2,000, so "once in" measures the server after it has shed the idle flood, and "while they connect" is the window that faces it: the open connections column gives, for each window, what the server the abusive clients go to held (polled once a second: the webhook's \`kagenti_webhook_open_connections\` on /metrics, a floor's own \`server.getConnections()\`; the generator's 16 included where it is the same server), as min / median / max.`,
      '',
      '| goal | measured | met |',
      '| --- | --- | --- |',
      `| p99 < 5 ms at ${rate} req/s with ${int(abuseIdle)} idle connections, ${abuseStalled} stalled clients and one that never reads | while they connect (${countText(a.connections.during)} connections open, min / median / max): p99 ${ms(a.during.p99)} ms; once they are in (${countText(a.connections.after)} open): p99 ${ms(a.after.p99)} ms (the same server before any of them: ${ms(a.before.p99)} ms)${abuseFloors.map((f) => `; ${ABUSE_TARGETS[f.target].short}: ${ms(f.during.p99)} and ${ms(f.after.p99)} ms`).join('')} | ${ok(a.during) ? 'yes' : 'no'} / ${ok(a.after) ? 'yes' : 'no'} |`,
      `| memory under the Deployment's 512 Mi limit | RSS ${mb(a.rssIdle)} MB before, at most ${mb(a.rssMax)} MB during | ${a.rssMax < 512 * 1024 * 1024 ? 'yes' : 'no'} |`,
      '',
      `Connections: ${int(a.ready.attempted)} attempted, ${int(a.ready.handshakes)} finished TLS, ${int(a.ready.open)} still open when the last was in (\`--max-connections\` 2,000: the server closed the longest-idle to make room, and closes those that send no request header within \`--quiet-seconds\` 5); ${int(a.end.closedByServer)} closed by the server by the end, ${int(a.end.open)} open.`,
      ...(abuseFloors.length
        ? [
            '',
            "The same abusive clients and the same load, on a fresh floor each (`bench/floor.ts`: no connection guard, no timeouts of its own, Node's defaults). In the last row the abusive clients go to a second floor process: the floor under load is untouched by them and shares only the machine, so its figures are what the flood costs any server on this machine through the CPUs it takes (the attacker runs on the same two CPUs here; in a cluster it would not).",
            '',
            '| load goes to | abusive clients go to | baseline p99 ms | while they connect p99 ms | once in p99 ms | RSS of the loaded server at most, MB | abusive connections open when the last was in | closed by the server they went to, by the end |',
            '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
            ...[a, ...abuseFloors].map((x) => {
              const t = ABUSE_TARGETS[x.target];
              return `| ${t.load} | ${t.abusers} | ${ms(x.before.p99)} | ${ms(x.during.p99)} | ${ms(x.after.p99)} | ${mb(x.rssMax)} | ${int(x.ready.open)} | ${int(x.end.closedByServer)} |`;
            }),
          ]
        : []),
      '',
      '| load goes to / abusive clients go to | scenario | open connections on the abusive clients\' server, min / median / max | req/s | p50 ms | p99 ms | p99.9 ms | max ms | requests | errors/non-2xx |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...[a, ...abuseFloors].flatMap((run) =>
        (
          [
            ['before any abusive client (baseline)', run.before, run.connections.before],
            ['while the abusive clients connect', run.during, run.connections.during],
            ['once they are all in', run.after, run.connections.after],
          ] as const
        ).map(([name, x, c]) => {
          return `| ${ABUSE_TARGETS[run.target].load} / ${ABUSE_TARGETS[run.target].abusers} | ${name} | ${countText(c)} | ${int(x.rps)} | ${ms(x.p50)} | ${ms(x.p99)} | ${ms(x.p999)} | ${ms(x.max)} | ${int(x.requests)} | ${x.errors}/${x.non2xx} |`;
        }),
      ),
    ].join('\n');
  }
  const out = values.out!;
  let text = existsSync(out) ? readFileSync(out, 'utf8') : '# Benchmarks\n';
  for (const [name, body] of Object.entries(sections)) text = replaceSection(text, name, body);
  writeFileSync(out, text);
  say(`wrote ${out}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
