// `npm run soak`: drives the webhook (the real `bin/kagenti-webhook.js serve`, own process, info logging to
// /dev/null) at a fixed rate for 10 minutes with a mix of realistic AdmissionReviews, and reports per window
// the requests, errors, latency (p50/p99/p99.9) and the server's RSS; at the end the latency drift (last window
// against the second) and the memory growth over the second half (bench/verdicts.ts soakGrowth: the slope over
// the second half's windows and the rise of their highest RSS over the first half's, each against its bound).
// Not part of `npm test`.
//
//   node bench/soak.ts [--minutes N] [--rate R] [--connections N] [--window S] [--server bin|module]
// The report goes to stdout, from its first lines (parameters, start date, Node version, commit) to the verdict, so
// that a pasted report keeps them; the server's pid and port go to stderr.
// Exit code 1 when any request failed or got a non-2xx answer, or RSS grew over the second half (either figure over
// its bound).
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { FIXTURES } from './fixtures.ts';
import { ROOT, benchCerts, deploymentNodeOptions, envText, paced, percentile, startWebhook } from './run.ts';
import { growthText, growthWord, soakGrowth } from './verdicts.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    connections: { type: 'string', default: '16' },
    window: { type: 'string', default: '' },
    server: { type: 'string', default: 'bin' },
    'log-level': { type: 'string', default: 'info' },
  },
});
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const connections = Number(values.connections);
const totalS = Math.max(10, Math.round(minutes * 60));
const windowS = Number(values.window) || (totalS >= 300 ? 60 : Math.max(5, Math.round(totalS / 10)));
if (!(minutes > 0 && rate > 0 && connections > 0)) {
  process.stderr.write('usage: node bench/soak.ts [--minutes N] [--rate R] [--connections N] [--window S] [--server bin|module]\n');
  process.exit(2);
}

const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const say = (s: string) => process.stdout.write(`${s}\n`);

const certs = await benchCerts();
const server = values.server === 'module' ? 'module' : 'bin';
const startedAt = new Date().toISOString();
const hook = await startWebhook(certs, { server, logLevel: values['log-level']!, logFile: '/dev/null' });
process.stderr.write(`soak: server pid ${hook.child.pid} on :${hook.port}, cwd ${ROOT}\n`);
let commit = 'n/a';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
} catch {
  /* not a git checkout */
}
// the report's first lines: what was run, when, on what
say(
  `soak: ${minutes} min at ${rate} req/s evenly spaced over up to ${connections} keep-alive connections, windows of ${windowS} s; ` +
    `mix of 10 per cycle: 5 × /mutate small, 2 × /mutate deployment, 2 × /validate (small, deployment), 1 × /mutate env1500`,
);
say(
  `server: ${server === 'bin' ? `${envText()}node ${deploymentNodeOptions().join(' ')} bin/kagenti-webhook.js serve --cluster none` : 'startServer() from source (--server module), no cluster state'} --log-level ${values['log-level']}, logs to /dev/null`,
);
say(`started ${startedAt}, node ${process.version}, commit ${commit}`);

const bodies = Object.fromEntries(FIXTURES.map((f) => [f.name, JSON.stringify(f.review())]));
// mostly small and Deployment pods, some /validate, a 1,500-env pod now and then
const mix = [
  { path: '/mutate', body: bodies.small! },
  { path: '/mutate', body: bodies.deployment! },
  { path: '/validate', body: bodies.small! },
  { path: '/mutate', body: bodies.small! },
  { path: '/validate', body: bodies.deployment! },
  { path: '/mutate', body: bodies.small! },
  { path: '/mutate', body: bodies.deployment! },
  { path: '/mutate', body: bodies.small! },
  { path: '/mutate', body: bodies.small! },
  { path: '/mutate', body: bodies.env1500! },
];

interface Window {
  i: number;
  lat: number[];
  ok: number;
  bad: number;
  rss: number;
}
const windows: Window[] = [];
let cur: Window = { i: 0, lat: [], ok: 0, bad: 0, rss: 0 };
const started = Date.now();
const header = 'window  end(s)  requests  non-2xx   p50 ms   p99 ms  p99.9 ms   RSS MB';
say(header);
const closeWindow = () => {
  cur.rss = hook.rss();
  windows.push(cur);
  const sorted = Float64Array.from(cur.lat).sort();
  say(
    `${String(cur.i + 1).padStart(6)}  ${String(Math.round((Date.now() - started) / 1000)).padStart(6)}  ${String(cur.ok + cur.bad).padStart(8)}  ${String(cur.bad).padStart(7)}  ${percentile(sorted, 50).toFixed(2).padStart(7)}  ${percentile(sorted, 99).toFixed(2).padStart(7)}  ${percentile(sorted, 99.9).toFixed(2).padStart(8)}  ${mb(cur.rss).padStart(7)}`,
  );
  cur = { i: cur.i + 1, lat: [], ok: 0, bad: 0, rss: 0 };
};
const timer = setInterval(closeWindow, windowS * 1000);
const rssBefore = hook.rss();
// evenly spaced requests (open loop): latency counts from when each request was due
const result = await paced({
  port: hook.port,
  requests: mix,
  connections,
  seconds: totalS,
  rate,
  latencies: false,
  onResponse: (status, ms) => {
    if (status === 200) {
      cur.ok++;
      cur.lat.push(ms);
    } else cur.bad++;
  },
});
clearInterval(timer);
const prev = windows.at(-1);
if (prev && cur.ok + cur.bad < rate * windowS * 0.2) {
  // a short trailing window: fold it into the last full one
  prev.ok += cur.ok;
  prev.bad += cur.bad;
  prev.lat.push(...cur.lat);
  prev.rss = hook.rss();
} else if (cur.ok + cur.bad > 0) closeWindow();
await hook.stop();

const full = windows.filter((w) => w.ok + w.bad > 0);
const p99 = (w: Window) => percentile(Float64Array.from(w.lat).sort(), 99);
// the first window includes start-up and JIT warm-up: drift is measured from the second one
const first = full.length >= 3 ? full[1] : full[0];
const last = full.at(-1);
const mid = full[Math.floor(full.length / 2)];
const errors = result.errors + result.timeouts;
const non2xx = full.reduce((a, w) => a + w.bad, 0);
say('');
say(`requests ${result.requests} in ${result.seconds.toFixed(0)} s (${(result.requests / result.seconds).toFixed(0)} req/s); errors (connection or timeout) ${errors}, non-2xx ${non2xx}`);
if (first && last) {
  say(`latency drift: p99 window ${full.indexOf(first) + 1} ${p99(first).toFixed(2)} ms, last window ${p99(last).toFixed(2)} ms (${(p99(last) / p99(first)).toFixed(2)}x)`);
  say(`memory: RSS before ${mb(rssBefore)} MB, window ${full.indexOf(first) + 1} ${mb(first.rss)} MB, half-way ${mb(mid!.rss)} MB, end ${mb(last.rss)} MB, max ${mb(Math.max(...full.map((w) => w.rss)))} MB`);
}
const growth = soakGrowth(full.map((w) => ({ requests: w.ok + w.bad, rss: w.rss })));
say(`memory growth over the second half: ${growthText(growth)}`);
const memoryWord = `memory ${growthWord(growth)} in the second half (slope ${(growth.slopePerRequest * 100_000 / 1024 / 1024).toFixed(2)} MB per 100k requests, max ${growth.growth >= 0 ? '+' : '−'}${mb(Math.abs(growth.growth))} MB)`;
if (errors || non2xx || !growth.ok) {
  say(`FAIL: ${errors ? `${errors} errors; ` : ''}${non2xx ? `${non2xx} non-2xx; ` : ''}${memoryWord}`);
  process.exitCode = 1;
} else say(`OK: no errors; ${memoryWord}`);
