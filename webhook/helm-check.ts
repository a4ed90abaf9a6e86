// Helm release records are checked in a child process, with a time budget.
//
// A record's manifest can be megabytes of YAML (16 MiB at most, see MAX_RELEASE_JSON), and linting it takes
// seconds. Anyone who may create a Secret in a namespace the webhook covers can send one. Checked on the
// event loop, such a record held up every other admission (agent pods included, failurePolicy Fail) for as long
// as the check ran. Here the event loop only hands the record over and waits: one child process checks one record
// at a time. A record not checked within its budget, one that finds the queue full, or one whose check ended the
// child (out of memory) is allowed with a warning, as an undecodable record is: the Helm webhook is an early
// warning, and the objects themselves are still checked when Helm applies them.
//
// A process, not a worker thread: a worker's heap limit (resourceLimits) gives way to --max-old-space-size, which
// the Deployment sets for the server (384 MB), so a record built to need memory grew the process past the
// container's 512Mi. The child gets its own small heap, and its memory goes back to the system when it ends.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { HelmReleaseResult } from './helm-release.ts';
import { uncheckedWarning } from './helm-release.ts';
import { isObject } from './json.ts';
import type { IssuerInfo } from './rules.ts';
import { errField } from './log-fields.ts';

/** Budget for one record, from the moment it arrives: under the Helm webhook's timeoutSeconds (5). */
export const HELM_CHECK_MS = 3_000;
/** A record with less of its budget left than this when its turn comes is not started. */
const MIN_CHECK_MS = 100;
/** Records waiting for the child at most; more are allowed unchecked at once. */
export const HELM_QUEUE = 4;
/**
 * The child's heap (V8's old generation) and young generation semi-space, MB: a record that needs more ends the
 * child, not the server. The check itself needs little (a release of 15 MiB of ordinary manifests passes in 64 MB);
 * a record built to need more (one document of millions of tiny objects) ends the child at about 150 MB of
 * memory, which with the server's own (about 120 MB) and the request bodies it may hold (64 MiB) stays well inside
 * the Deployment's 512Mi.
 */
const CHILD_HEAP_MB = 64;
const CHILD_SEMI_SPACE_MB = 2;
/** A child with nothing to do is stopped after this long, and its memory given back (records come in bursts). */
const CHILD_IDLE_MS = 10_000;

interface Job {
  id: number;
  obj: unknown;
  issuer: IssuerInfo;
  deadline: number;
  done: (r: HelmReleaseResult) => void;
}

export interface HelmCheckerOptions {
  config: Config;
  log: Logger;
  /** Budget per record (tests set less). */
  budgetMs?: number;
  queue?: number;
  /** The child's old generation limit, MB (default CHILD_HEAP_MB). */
  heapMb?: number;
  /** The child's module (tests stand in one that fails); default helm-worker beside this module. */
  workerUrl?: URL;
}

/** What the webhook keeps of the child's stderr: its end, enough for the line that says why it failed. */
const STDERR_KEEP = 4096;

/**
 * The line of a failed child's stderr that says why, for the log: the first that names an error (Node's
 * `Error: Cannot find module ...`, `FATAL ERROR: ...`), else the last non-empty one; at most 300 characters.
 */
export function stderrReason(tail: string): string | undefined {
  const lines = tail.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /(^|\b)(\w*Error\b|FATAL ERROR)/.test(l)) ?? lines.at(-1);
  return line === undefined ? undefined : line.slice(0, 300);
}

/** The part of a record the check reads (the child gets a copy of it, not the whole request). */
function recordOf(obj: Record<string, any>): Record<string, unknown> {
  const md = isObject(obj.metadata) ? obj.metadata : {};
  return { kind: obj.kind, type: obj.type, metadata: { name: md.name, namespace: md.namespace, labels: md.labels }, data: obj.data };
}

export class HelmChecker {
  private child: ChildProcess | undefined;
  private readonly waiting: Job[] = [];
  private running: Job | undefined;
  private timer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private closed = false;
  private readonly budgetMs: number;
  private readonly maxQueue: number;

  private readonly opts: HelmCheckerOptions;

  constructor(opts: HelmCheckerOptions) {
    this.opts = opts;
    this.budgetMs = opts.budgetMs ?? HELM_CHECK_MS;
    this.maxQueue = opts.queue ?? HELM_QUEUE;
  }

  /** The check of one record; never rejects. */
  check(obj: Record<string, any>, issuer: IssuerInfo): Promise<HelmReleaseResult> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(notChecked(obj, 'the webhook is shutting down'));
      if (this.waiting.length >= this.maxQueue) return resolve(notChecked(obj, `${this.maxQueue} other record${this.maxQueue === 1 ? ' was' : 's were'} waiting to be checked`));
      this.waiting.push({ id: this.nextId++, obj: recordOf(obj), issuer, deadline: performance.now() + this.budgetMs, done: resolve });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    for (const j of this.waiting.splice(0)) j.done(notChecked(j.obj, 'the webhook is shutting down'));
    this.finish(undefined, 'the webhook is shutting down');
    this.stopChild();
  }

  private pump(): void {
    if (this.running) return;
    clearTimeout(this.idleTimer);
    const job = this.waiting.shift();
    if (!job) {
      // nothing to do: give the child's memory back after a while
      if (this.child) {
        this.idleTimer = setTimeout(() => this.stopChild(), CHILD_IDLE_MS);
        this.idleTimer.unref();
      }
      return;
    }
    const left = job.deadline - performance.now();
    // too little left to check anything (a check takes a child's start and the decoding at least)
    if (left < MIN_CHECK_MS) {
      job.done(notChecked(job.obj, `it waited ${((this.budgetMs - left) / 1000).toFixed(1)} s for other records`));
      this.pump();
      return;
    }
    this.running = job;
    this.timer = setTimeout(() => {
      this.opts.log.warn({ budgetMs: this.budgetMs }, 'Helm release record not checked within its budget: the check was stopped and the record allowed');
      // say what used the budget: the check itself, or the wait for the records before it
      const waited = (this.budgetMs - left) / 1000;
      this.finish(
        undefined,
        waited < 0.1
          ? `its check took longer than ${this.budgetMs / 1000} s`
          : `it waited ${waited.toFixed(1)} s for other records and its check did not finish in the ${(left / 1000).toFixed(1)} s left of ${this.budgetMs / 1000} s`,
      );
      this.stopChild();
      // start the next child now, so the next record (Helm writes them in bursts) need not spend its budget on
      // the start; unused, it stops after CHILD_IDLE_MS as any idle child does
      if (!this.closed) this.ensureChild();
      this.pump();
    }, left);
    this.timer.unref();
    this.ensureChild().send({ id: job.id, obj: job.obj, issuer: job.issuer });
  }

  /** Ends the running job: with the child's result, or unchecked with `why`. */
  private finish(result: HelmReleaseResult | undefined, why: string): void {
    const job = this.running;
    if (!job) return;
    this.running = undefined;
    clearTimeout(this.timer);
    job.done(result ?? notChecked(job.obj, why));
  }

  private ensureChild(): ChildProcess {
    if (this.child) return this.child;
    // the child's module sits beside this one: .ts when run from source (tests), .js when built
    const file = this.opts.workerUrl ?? new URL(import.meta.url.endsWith('.ts') ? './helm-worker.ts' : './helm-worker.js', import.meta.url);
    const child = fork(file, [], {
      // its own heap limits (these come after NODE_OPTIONS, so they win over the server's), nothing inherited
      execArgv: [`--max-old-space-size=${this.opts.heapMb ?? CHILD_HEAP_MB}`, `--max-semi-space-size=${CHILD_SEMI_SPACE_MB}`],
      serialization: 'advanced',
      // stderr is kept (its last 4 KiB), not copied to ours: V8's out-of-memory report alone is many lines, and
      // the log line below says in one why the child ended
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    child.unref();
    child.channel?.unref();
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEEP);
    });
    (child.stderr as { unref?: () => void } | null)?.unref?.();
    const startedAt = performance.now();
    child.send({ config: this.opts.config });
    // Events of a child already stopped or replaced (a record that ran out of time) are ignored.
    child.on('message', (m: { ready?: true; id?: number; result?: HelmReleaseResult }) => {
      if (this.child !== child) return;
      // its start (loading the lint modules) counts against the budget of the record it was started for: the
      // debug line says how long it took
      if (m.ready) {
        this.opts.log.debug({ pid: child.pid, startMs: Math.round(performance.now() - startedAt) }, 'Helm release check process ready');
        return;
      }
      if (m.id === undefined || m.result === undefined || this.running?.id !== m.id) return;
      this.finish(m.result, '');
      this.pump();
    });
    const ended = (why: string, detail: Record<string, unknown>) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.running) this.opts.log.warn(detail, `Helm release check ended its process: the record was allowed unchecked (${why})`);
      this.finish(undefined, why);
      this.pump();
    };
    child.on('error', (err) => ended('its check failed', { err: errField(err) }));
    // 'close', not 'exit': by then the child's stderr has been read to its end.
    // V8 aborts a process out of heap: SIGABRT, or exit code 134 where a shell reports it
    child.on('close', (code, signal) => {
      const oom = signal === 'SIGABRT' || code === 134;
      const detail: Record<string, unknown> = { code, signal };
      const reason = oom ? undefined : stderrReason(stderr);
      if (reason) detail.stderr = reason;
      ended(oom ? 'its check needed more memory than the webhook allows' : 'its check failed', detail);
    });
    this.child = child;
    return child;
  }

  private stopChild(): void {
    const c = this.child;
    this.child = undefined;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

function notChecked(obj: unknown, why: string): HelmReleaseResult {
  const o = isObject(obj) ? obj : {};
  const md = isObject(o.metadata) ? o.metadata : {};
  const labels = isObject(md.labels) ? md.labels : {};
  const ns = typeof md.namespace === 'string' && md.namespace ? md.namespace : 'default';
  const name = typeof md.name === 'string' ? md.name : '';
  return {
    releaseName: typeof labels.name === 'string' ? labels.name : '',
    namespace: ns,
    status: typeof labels.status === 'string' ? labels.status : '',
    checked: false,
    skipped: `not checked: ${why}`,
    violations: [],
    warnings: [uncheckedWarning(`Helm release record ${ns}/${name}`, why)],
  };
}
