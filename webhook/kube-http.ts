// Requests to the API server over node:http(s), with the TLS, credentials and proxy of client-node's KubeConfig
// (applyToHTTPSOptions: the kubeconfig's CA and client certificate, a bearer token, an exec plugin such as `aws eks
// get-token`, an auth provider, a proxy-url): list pages and discovery documents (kubeGetJson), and watches
// (KubeWatch, which client-node's ListWatch drives as it would drive client-node's own Watch).
//
// Why not client-node's Watch: it reads the stream through undici's fetch, and undici is the largest part of what
// client-node loads (1.4 of the bundle's 2.8 MB). With it, a webhook with cluster state idled about 24 MB higher and
// held about 13 MB more after 1M admissions, over the memory goal (BENCHMARKS.md, twenty-third round). The bundle (tools/bundle-kube-client.ts)
// leaves undici out; nothing the webhook calls in client-node needs it.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { KubeConfig } from './kube-client.ts';

/** What of a refused request's body is read for its Status message; the rest is not downloaded. */
const ERROR_BODY_BYTES = 64 * 1024;
/** How long a refused request's body may take to arrive (the status is known: only its message waits). */
const ERROR_BODY_MS = 5_000;

/**
 * client-node's KubeConfig keeps one https.Agent per cluster and user (its private agentCache), built from the TLS
 * material it read first; an agent's own options win over a request's, so a CA bundle or client certificate that
 * changes while the process runs (a rotated cluster CA in the service account's ca.crt, an exec plugin that returns a
 * new client certificate when the old one expires) would never be used. The material each agent was made from,
 * per KubeConfig: when applyToHTTPSOptions reads different material, the cached agent is dropped and a new one made
 * (the old one's connections end with their requests: its agents do not keep connections alive).
 */
const agentMaterial = new WeakMap<KubeConfig, { agent: unknown; material: string }>();

function tlsMaterial(o: https.RequestOptions): string {
  const h = createHash('sha256');
  for (const v of [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized]) {
    for (const part of Array.isArray(v) ? v : [v]) h.update(part === undefined ? '-' : Buffer.isBuffer(part) ? part : String(typeof part === 'object' ? JSON.stringify(part) : part)).update('\0');
    h.update('\x01');
  }
  return h.digest('hex');
}

/**
 * The request options for one request to `url`: the KubeConfig's credentials, TLS material and agent (a proxy-url's
 * agent too), with
 * - an agent made from the TLS material read now (agentMaterial above);
 * - header values without leading or trailing whitespace, as fetch sends them (a token file written by `echo` ends
 *   in a newline, which node:http refuses in a header; kubectl trims it too);
 * - the server's certificate checked against the cluster's `tls-server-name` or the server URL's host, whatever
 *   the agent connects through (a SOCKS proxy agent drops the host for an IP address and would check `localhost`).
 */
async function requestOptions(kc: KubeConfig, url: URL): Promise<https.RequestOptions> {
  let reqOpts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(reqOpts);
  const material = tlsMaterial(reqOpts);
  const seen = agentMaterial.get(kc);
  if (seen && seen.agent === reqOpts.agent && seen.material !== material) {
    const priv = kc as unknown as { agentCache?: Map<string, unknown>; getAgentCacheKey?: (c: unknown) => string };
    if (priv.agentCache instanceof Map && typeof priv.getAgentCacheKey === 'function') {
      priv.agentCache.delete(priv.getAgentCacheKey(kc.getCurrentCluster()));
      reqOpts = {};
      await kc.applyToHTTPSOptions(reqOpts);
    }
  }
  agentMaterial.set(kc, { agent: reqOpts.agent, material: tlsMaterial(reqOpts) });
  const trim = (v: string) => v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
  const headers: Record<string, string | string[] | number> = {};
  for (const [k, v] of Object.entries((reqOpts.headers ?? {}) as Record<string, string | string[] | number | undefined>)) {
    if (v !== undefined) headers[k] = typeof v === 'string' ? trim(v) : Array.isArray(v) ? v.map(trim) : v;
  }
  headers.Accept = 'application/json';
  const checkAs = reqOpts.servername || url.hostname.replace(/^\[|\]$/g, '');
  return { ...reqOpts, method: 'GET', headers, checkServerIdentity: (_host, cert) => tls.checkServerIdentity(checkAs, cert) };
}

/**
 * Reads what a refused request's body says (at most ERROR_BODY_BYTES, within ERROR_BODY_MS) and gives the error:
 * the API server's Status message, or the HTTP reason phrase.
 */
function refusal(res: http.IncomingMessage, status: number, settle: (err: KubeHttpError) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const done = () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    let msg = http.STATUS_CODES[status] ?? 'error';
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (typeof body?.message === 'string') msg = body.message;
    } catch {
      // not a Status (or cut short): the reason phrase
    }
    settle(new KubeHttpError(status, `HTTP ${status}: ${msg}`));
    res.destroy();
  };
  const timer = setTimeout(done, ERROR_BODY_MS);
  timer.unref();
  res.on('data', (c: Buffer) => {
    chunks.push(c);
    size += c.length;
    if (size >= ERROR_BODY_BYTES) done();
  });
  res.on('end', done);
  res.on('error', done);
  res.on('close', done);
}

/** A response over kubeGetJson's maxBytes: nothing of it was parsed. */
export class ResponseTooLargeError extends Error {
  constructor(maxBytes: number) {
    super(`response larger than ${maxBytes} bytes`);
    this.name = 'ResponseTooLargeError';
  }
}

export class KubeHttpError extends Error {
  readonly statusCode: number;
  /** The status as text, where errField (the log's `err.code`) finds a code, as it does client-node's. */
  readonly code: string;
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = 'KubeHttpError';
    this.statusCode = statusCode;
    this.code = String(statusCode);
  }
}

export async function kubeGetJson(
  kc: KubeConfig,
  path: string,
  opts: { maxBytes?: number; timeoutMs?: number; onBytes?: (n: number) => void; signal?: AbortSignal } = {},
): Promise<any> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/+$/, '') + path);
  const reqOpts = await requestOptions(kc, url);
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024;
  const mod = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      { ...reqOpts, ...(opts.signal ? { signal: opts.signal } : {}) },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) return refusal(res, status, reject);
        // decoded as it arrives: a page is held as its text and then its objects, not also as chunks and their concat
        const decoder = new StringDecoder('utf8');
        let text = '';
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            text = '';
            req.destroy(new ResponseTooLargeError(maxBytes));
            return;
          }
          text += decoder.write(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          opts.onBytes?.(size);
          text += decoder.end();
          let body: any;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          if (body === undefined) reject(new Error('response is not JSON'));
          else resolve(body);
        });
      },
    );
    req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * The longest watch line accepted (one event: an object, which etcd caps at 1.5 MiB by default): a longer one ends the
 * watch as failed. Counted in bytes, its line end (`\n` or `\r\n`) left out.
 */
export const MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024;

export type WatchCallback = (phase: string, obj: any, raw: any) => unknown;
export type WatchDone = (err: unknown) => unknown;

/**
 * A watch over node:http(s), with the same contract as client-node's Watch, which ListWatch relies on:
 * `watch()` resolves with an AbortController once the request has its response headers (or has failed);
 * `callback(type, object, event)` for each event line; `done(err)` exactly once, when the stream ends (null), fails
 * (the error; a non-200 answer's has `statusCode`, and a 410 makes ListWatch list again), is aborted, or times out
 * (an error named TimeoutError, which ListWatch takes for a quiet reconnect). `requestTimeoutMs` is the time allowed
 * for the response headers, and then for each silence of a connected watch. Unlike client-node's, a line that is
 * not JSON or is over MAX_WATCH_LINE_BYTES ends the watch as failed (it would have been dropped without a word),
 * and a refused watch's error carries the API server's Status message, not only the HTTP reason phrase.
 */
export class KubeWatch {
  requestTimeoutMs = 30_000;
  maxLineBytes = MAX_WATCH_LINE_BYTES;
  private readonly kc: KubeConfig;

  constructor(kc: KubeConfig) {
    this.kc = kc;
  }

  async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined> | undefined,
    callback: WatchCallback,
    done: WatchDone,
    /** aborts the watch like its controller, also before its response headers (an informer's stop) */
    stop?: AbortSignal,
  ): Promise<AbortController> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    url.searchParams.set('watch', 'true');
    for (const [k, v] of Object.entries(queryParams ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    // Credentials first, as client-node's Watch does: an exec plugin that fails rejects this call, before any request
    const reqOpts = await requestOptions(this.kc, url);
    const controller = new AbortController();
    const mod = url.protocol === 'http:' ? http : https;
    const limit = this.maxLineBytes;
    const timeoutMs = this.requestTimeoutMs;

    return new Promise<AbortController>((resolve) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      let req: http.ClientRequest | undefined;
      const finish = (err: unknown) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        timer = undefined;
        stop?.removeEventListener('abort', onStop);
        req?.destroy();
        try {
          done(err);
        } finally {
          resolve(controller);
        }
      };
      // (re)starts the timeout: for the response headers, then for each silence
      const arm = () => {
        if (finished) return;
        if (timer) timer.refresh();
        else (timer = setTimeout(() => finish(new DOMException(`no response within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs)).unref();
      };
      controller.signal.addEventListener('abort', () => finish(controller.signal.reason), { once: true });
      const onStop = () => controller.abort(stop!.reason);
      if (stop?.aborted) {
        onStop();
        return;
      }
      stop?.addEventListener('abort', onStop, { once: true });
      arm();
      const onResponse = (res: http.IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          // the status is known: the watch's timeout no longer applies, and the Status the API server sends with a
          // refusal says why (`pods is forbidden: User ... cannot watch ...`)
          clearTimeout(timer);
          return refusal(res, status, finish);
        }
        arm(); // connected: from here the timeout is for silence
        resolve(controller);
        // Lines are split on the newline byte (never part of a multi-byte UTF-8 character) and decoded whole, so a
        // line's size is counted in bytes as it arrives, and only the new bytes are searched for line ends.
        let parts: Buffer[] = [];
        let partBytes = 0;
        const tooLong = () => new Error(`the API server sent a watch line over ${limit} bytes; the watch is ended`);
        const line = (bytes: Buffer) => {
          const cr = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d;
          if (bytes.length - (cr ? 1 : 0) > limit) throw tooLong();
          const t = bytes.toString('utf8', 0, bytes.length - (cr ? 1 : 0));
          if (!t.trim()) return;
          let event: any;
          try {
            event = JSON.parse(t);
          } catch {
            throw new Error(`the API server sent a watch line that is not JSON (${t.length} characters, starting ${JSON.stringify(t.slice(0, 40))})`);
          }
          callback(event?.type, event?.object, event);
        };
        const held = (last: Buffer): Buffer => {
          const whole = parts.length ? Buffer.concat([...parts, last]) : last;
          parts = [];
          partBytes = 0;
          return whole;
        };
        res.on('data', (c: Buffer) => {
          if (finished) return;
          arm();
          try {
            let from = 0;
            for (let nl = c.indexOf(0x0a); nl !== -1 && !finished; nl = c.indexOf(0x0a, from)) {
              if (partBytes + nl - from > limit + 1) throw tooLong();
              line(held(c.subarray(from, nl)));
              from = nl + 1;
            }
            if (finished || from === c.length) return;
            // (+1: a line's \r before its newline is not counted)
            if (partBytes + c.length - from > limit + 1) throw tooLong();
            parts.push(c.subarray(from));
            partBytes += c.length - from;
          } catch (e) {
            finish(e);
          }
        });
        res.on('end', () => {
          if (finished) return;
          try {
            if (partBytes) line(held(Buffer.alloc(0)));
          } catch (e) {
            return finish(e);
          }
          finish(null);
        });
        res.on('error', (e) => finish(e));
        res.on('close', () => finish(null));
      };
      try {
        req = mod.request(url, reqOpts, onResponse);
      } catch (e) {
        // node:http refuses some options before any request (a header value it will not send): a failed watch
        return finish(e);
      }
      req.on('error', (e) => finish(e));
      req.end();
    });
  }
}
