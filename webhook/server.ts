// The HTTPS admission server (POST /mutate, POST /validate, /healthz, /readyz) and the plain-HTTP probe
// server (/healthz, /readyz, /metrics). A thin shell: handlers in mutate.ts and validation.ts decide.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import type { AdmissionRequest, Decision } from './admission.ts';
import { AdmissionError, internalError, parseAdmissionReview, requestRef, reviewJson, shown } from './admission.ts';
import type { Config } from './config.ts';
import type { CloseReason } from './connections.ts';
import { guardConnections } from './connections.ts';
import {
  admissionDuration,
  admissionRequests,
  collectProcessMetrics,
  connectionsClosed,
  httpClientErrors,
  injectionSkipped,
  injections,
  openConnectionsFrom,
  registry,
  ruleViolations,
  tlsHandshakeErrors,
} from './metrics.ts';
import { mutate } from './mutate.ts';
import { parseReviewBody } from './review-body.ts';
import { isWorkloadKind } from './workloads.ts';
import type { ValidationService } from './validation.ts';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_QUIET_MS, MAX_BODY_BYTES, MAX_HELD_BODY_BYTES, REQUEST_MS } from './limits.ts';
import { cappedText, errField } from './log-fields.ts';
import { printable } from './json.ts';

export { DEFAULT_MAX_CONNECTIONS, DEFAULT_QUIET_MS, MAX_BODY_BYTES, MAX_HELD_BODY_BYTES, REQUEST_MS };

export interface ServerOptions {
  config: Config;
  log: Logger;
  validation: ValidationService;
  host: string;
  port: number;
  probePort: number;
  /** TLS options for the admission listener (cert, key, minVersion...). */
  tls: https.ServerOptions;
  /** Called with the HTTPS server once it exists (certificate reloading attaches here). */
  onHttpsServer?: (server: https.Server) => void;
  /** Open connections on the admission port at most (default 2,000; see connections.ts). */
  maxConnections?: number;
  /** A connection that sends no complete request header this long after connecting is closed (default 5 s). */
  quietMs?: number;
  /** One warning line about failed TLS handshakes at most this often (default HANDSHAKE_REPORT_MS; tests set less). */
  handshakeReportMs?: number;
  /** One warning line about requests refused before a handler (404, 400, 431, 408) at most this often (default CLIENT_ERROR_REPORT_MS). */
  clientErrorReportMs?: number;
}

/** Requests the admission port refuses before a handler sees them are reported in one warning line per minute at most. */
export const CLIENT_ERROR_REPORT_MS = 60_000;

/** A request refused before a handler saw it (a 404, or what Node's HTTP parser refused), for the warning line. */
export interface RefusedRequest {
  status: number;
  method?: string;
  path?: string;
  remote?: string;
}

/** Failed TLS handshakes are reported in one warning line per minute at most, however many there are. */
export const HANDSHAKE_REPORT_MS = 60_000;

/** Idle keep-alive connections are closed after this long (see harden()). */
export const KEEP_ALIVE_MS = 100_000;

/** Node's own requestTimeout comes this long after REQUEST_MS (see limits.ts). */
const REQUEST_BACKSTOP_MS = 10_000;

export interface RunningServer {
  https: https.Server;
  probe: http.Server;
  port: number;
  probePort: number;
  /** Marks the process not ready (SIGTERM): /readyz answers 503 from now on. */
  setNotReady(): void;
  /** Requests being processed right now. */
  inFlight(): number;
  /** Stops accepting, lets in-flight requests finish (up to graceMs), closes everything. */
  close(graceMs?: number): Promise<void>;
}

type Webhook = 'mutate' | 'validate';

/** A JSON answer, headers and body in one socket write (express's res.send() splits bodies over 1,000 chars
 *  into a second write, a second TLS record). `close` asks the client to leave (shutdown drain). */
function writeJson(res: http.ServerResponse, status: number, text: string, close = false): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (close) res.setHeader('Connection', 'close');
  res.end(text);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  writeJson(res, status, JSON.stringify(body));
}

function errorBody(message: string): { error: string } {
  return { error: message };
}

interface AdmissionDeps {
  config: Config;
  log: Logger;
  validation: ValidationService;
  ready: () => { ready: boolean; detail: Record<string, unknown> };
  track?: { begin(): void; end(): void };
  /** True once shutdown began: responses then carry `Connection: close`, so keep-alive clients
   *  (the API server) move to other replicas before the listener closes instead of being cut off. */
  draining?: () => boolean;
  /** Called for each connection closed because request bodies held passed MAX_HELD_BODY_BYTES. */
  onBodyCut?: () => void;
  /** Request body bytes held at once, all requests together (default MAX_HELD_BODY_BYTES; tests set less). */
  bodyBudget?: number;
  /** Told of each request answered 404 (a path or method the port does not serve): the rate-limited warning line. */
  onRefused?: (r: RefusedRequest) => void;
}

export interface Answer {
  status: number;
  text: string;
}

/**
 * One admission: body bytes in, HTTP status and JSON text out, with the metrics and the one log line.
 * Never throws: bad input is a 400 with a JSON error, a handler failure is a clean denial (fail closed).
 * A promise only for the requests validation answers off the event loop (Helm release records) and for a
 * unique-service-account denial that rests on agents admitted moments ago until the API server confirms them
 * (ValidationService.answer); every other answer is returned at once. `remote`: the peer's address, logged.
 */
/** A request's Content-Encoding when it is one the webhook does not read (anything but none or identity), shown. */
function contentEncoding(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const v = header.trim().toLowerCase();
  return v === '' || v === 'identity' ? undefined : JSON.stringify(v.slice(0, 40));
}

function unsupportedEncoding(encoding: string): string {
  return `request body has Content-Encoding ${encoding}, which the webhook does not read: send the AdmissionReview uncompressed, as the API server does (a proxy in front of the webhook must not compress requests)`;
}

export function answerAdmission(
  webhook: Webhook,
  body: Buffer,
  deps: Pick<AdmissionDeps, 'config' | 'log' | 'validation'>,
  remote?: string,
): Answer | Promise<Answer> {
  const { config, log, validation } = deps;
  const started = performance.now();
  let request: AdmissionRequest;
  try {
    if (body.length === 0) throw new AdmissionError('request body is empty; expected an AdmissionReview');
    let parsed: unknown;
    try {
      parsed = parseReviewBody(body);
    } catch (err) {
      const msg = err instanceof RangeError ? 'JSON nesting too deep' : (err as Error).message;
      throw new AdmissionError(`request body is not valid JSON: ${msg}`);
    }
    request = parseAdmissionReview(parsed);
  } catch (err) {
    const message = err instanceof AdmissionError ? err.message : 'request body could not be read';
    admissionRequests.inc({ webhook, operation: 'unknown', result: 'bad-request' });
    // an AdmissionError is the request's fault; anything else here is a bug (its stack, to report)
    log.warn({ webhook, status: 400, err: err instanceof AdmissionError ? errField(err) : errField(err, { stack: true }), remote }, 'bad admission request');
    return { status: 400, text: JSON.stringify(errorBody(message)) };
  }

  if (webhook === 'validate' && validation.validateLater) {
    const later = validation.validateLater(request);
    if (later) return later.then((decision) => answered(webhook, request, decision, started, log, remote, 'helm-release'));
  }
  let decision: Decision | Promise<Decision>;
  try {
    decision =
      webhook === 'mutate' ? mutate(request, { config, validation }) : validation.answer ? validation.answer(request, body.length) : validation.validate(request);
  } catch (err) {
    // Fail closed with a clean denial: never admit an object we could not evaluate, never leak a stack.
    const why = err instanceof RangeError ? 'the object is nested too deeply' : 'an internal error occurred';
    log.error({ webhook, uid: logged(request.uid), err: errField(err, { stack: true }) }, 'admission handler failed');
    decision = internalError(
      request.uid,
      `[internal-error] ${requestRef(request)}: the webhook could not evaluate this object (${why}). It is denied rather than admitted unchecked. Fix: check the manifest; if it is valid, report this to the platform team.`,
    );
  }
  // a promise only for a unique-service-account denial checked with the API server first (never rejects)
  if (decision instanceof Promise) return decision.then((d) => answered(webhook, request, d, started, log, remote));
  return answered(webhook, request, decision, started, log, remote);
}

/** The `object` label of admission_duration_seconds: a few fixed values, whatever kind a client names. */
function objectClass(kind: string): string {
  if (kind === 'Pod') return 'pod';
  if (kind === 'ConfigMap') return 'configmap';
  return isWorkloadKind(kind) ? 'workload' : 'other';
}

/** The answer to a request decided: its JSON, the metrics and the log line. */
/**
 * A name for the log line. The API server checks names after the mutating webhooks, and any client that reaches the
 * port can send a request of its own, so a name, kind, user or uid can be megabytes, or not a string: shown as the
 * messages show names (cut past 253 characters), or said what it is, rather than logged whole (a line of megabytes
 * fills the log's pending buffer, which then drops lines).
 */
function logged(v: unknown): string | undefined {
  if (typeof v === 'string') return v ? shown(v) : undefined;
  return v === undefined || v === null ? undefined : `(not a string: ${Array.isArray(v) ? 'array' : typeof v})`;
}

/** Free text in a decision's detail (a skip reason, a Helm record's status) is cut past this in the log line. */
const MAX_DETAIL_TEXT = 1000;

/**
 * The decision's detail for the log line. Its free text is built with names cut as messages cut them, but it can carry
 * request data: a string over MAX_DETAIL_TEXT characters is cut, so no request makes a line of megabytes.
 */
function loggedDetail(detail: Record<string, unknown>): Record<string, unknown> {
  for (const k in detail) {
    const v = detail[k];
    if (typeof v !== 'string' || v.length <= MAX_DETAIL_TEXT) continue;
    const out: Record<string, unknown> = { ...detail };
    for (const j in out) {
      const w = out[j];
      if (typeof w === 'string') out[j] = cappedText(w, MAX_DETAIL_TEXT);
    }
    return out;
  }
  return detail;
}

function answered(webhook: Webhook, request: AdmissionRequest, decision: Decision, started: number, log: Logger, remote: string | undefined, object?: string): Answer {
  const text = reviewJson(decision.response);

  const seconds = (performance.now() - started) / 1e3;
  admissionDuration.observe({ webhook, object: object ?? objectClass(request.kind.kind) }, seconds);
  admissionRequests.inc({ webhook, operation: request.operation, result: decision.result });
  const detail = decision.detail ?? {};
  if (webhook === 'mutate') {
    if (typeof detail.skipped === 'string') injectionSkipped.inc({ reason: detail.skipped });
    else if (decision.result === 'patched' && typeof detail.mode === 'string') {
      injections.inc({ mode: detail.mode });
      // the injection's warnings (sidecars-block-completion, proxy-uid, ...), one per warning, as /validate counts
      for (const rule of decision.violations ?? decision.rules ?? []) ruleViolations.inc({ rule, action: 'warned' });
    }
    else if (detail.unchanged) injectionSkipped.inc({ reason: 'already-injected' });
    // injection's denials (invalid-annotation, reserved-name, ...); /validate counts its rules where it checks them
    else if (decision.result === 'denied')
      for (const rule of decision.violations ?? decision.rules ?? []) ruleViolations.inc({ rule, action: 'denied' });
  }
  const obj = request.object ?? request.oldObject ?? undefined;
  log.info(
    {
      webhook,
      uid: logged(request.uid),
      kind: logged(request.kind.kind),
      operation: request.operation,
      namespace: logged(request.namespace || obj?.metadata?.namespace),
      name: logged(request.name || obj?.metadata?.name),
      generateName: request.name || obj?.metadata?.name ? undefined : logged(obj?.metadata?.generateName),
      // as the request says: anything that reaches the port can send one (remote: the peer it came from)
      user: logged(request.userInfo?.username),
      remote,
      dryRun: request.dryRun || undefined,
      decision: decision.result,
      rules: decision.rules?.length ? decision.rules : undefined,
      message: decision.response.status?.message,
      warnings: decision.response.warnings,
      ...loggedDetail(detail),
      durationMs: Math.round(seconds * 1e6) / 1e3,
    },
    'admission',
  );
  return { status: 200, text };
}

/** A request whose body is being read: a node of the listener's list of held bodies. */
interface Reading {
  req: http.IncomingMessage;
  /** Body bytes it holds. */
  bytes: number;
  /** In the list (from its first bytes until its body is complete, cut or abandoned). */
  listed: boolean;
  prev: Reading | undefined;
  next: Reading | undefined;
}

/**
 * The request listener of the admission port. POST /mutate and /validate (the hot path, called for every
 * agent pod create) are answered by a plain node:http handler: body read with a MAX_BODY_BYTES cap, no express
 * routing or middleware per request. Everything else (/healthz, /readyz, 404s) goes through express.
 */
export function createAdmissionListener(deps: AdmissionDeps): http.RequestListener {
  const app = createAdmissionApp(deps);
  const { log } = deps;
  // Bodies being read, the one reading longest first, with the bytes each holds (see MAX_HELD_BODY_BYTES). A
  // list through the requests' own records rather than a Map: a long-lived Map that grows and shrinks with every
  // request reallocates its table, and those tables end up in the old generation (more full garbage collections).
  const budget = deps.bodyBudget ?? MAX_HELD_BODY_BYTES;
  let first: Reading | undefined;
  let last: Reading | undefined;
  let held = 0;
  const release = (r: Reading) => {
    if (!r.listed) return;
    r.listed = false;
    held -= r.bytes;
    if (r.prev) r.prev.next = r.next;
    else first = r.next;
    if (r.next) r.next.prev = r.prev;
    else last = r.prev;
    r.prev = r.next = undefined;
  };
  const hold = (r: Reading, added: number) => {
    if (!r.listed) {
      // a request keeps the place it took with its first bytes
      r.listed = true;
      r.prev = last;
      if (last) last.next = r;
      else first = r;
      last = r;
    }
    r.bytes += added;
    held += added;
    for (let other = first; other && held > budget; ) {
      const next = other.next;
      if (other !== r) {
        release(other);
        other.req.socket.destroy();
        connectionsClosed.inc({ reason: 'body-budget' });
        deps.onBodyCut?.();
      }
      other = next;
    }
  };
  return (req, res) => {
    const url = req.url ?? '';
    const q = url.indexOf('?'); // the API server appends ?timeout=Ns
    const path = q === -1 ? url : url.slice(0, q);
    if (req.method !== 'POST' || (path !== '/mutate' && path !== '/validate')) {
      app(req, res);
      return;
    }
    const webhook: Webhook = path === '/mutate' ? 'mutate' : 'validate';
    deps.track?.begin();
    const reading: Reading = { req, bytes: 0, listed: false, prev: undefined, next: undefined };
    res.once('close', () => {
      deps.track?.end();
      release(reading);
    });
    // Over MAX_BODY_BYTES (declared or streamed): stop keeping the bytes, read the rest away, then answer 413.
    // Answering before the client has finished sending would reset its connection and lose the answer; the read is
    // bounded by REQUEST_MS. A compressed body (Content-Encoding other than identity: the API server never sends
    // one, a compressing proxy in front of the webhook might) is read away the same way and answered 415.
    const encoding = contentEncoding(req.headers['content-encoding']);
    let tooLarge = encoding !== undefined || Number(req.headers['content-length']) > MAX_BODY_BYTES;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        tooLarge = true;
        chunks.length = 0;
        release(reading);
        return;
      }
      chunks.push(chunk);
      hold(reading, chunk.length);
    });
    req.on('end', () => {
      release(reading);
      if (encoding !== undefined) {
        admissionRequests.inc({ webhook, operation: 'unknown', result: 'bad-request' });
        log.warn({ webhook, status: 415, remote: req.socket.remoteAddress, contentEncoding: encoding }, 'request body compressed');
        writeJson(res, 415, JSON.stringify(errorBody(unsupportedEncoding(encoding))), true);
        return;
      }
      if (tooLarge) {
        admissionRequests.inc({ webhook, operation: 'unknown', result: 'too-large' });
        log.warn({ webhook, status: 413, remote: req.socket.remoteAddress }, 'request body too large');
        writeJson(res, 413, JSON.stringify(errorBody(`request body is larger than ${MAX_BODY_BYTES} bytes`)), true);
        return;
      }
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      const answer = answerAdmission(webhook, body, deps, req.socket.remoteAddress);
      if (!(answer instanceof Promise)) writeJson(res, answer.status, answer.text, deps.draining?.() ?? false);
      else
        answer.then(
          ({ status, text }) => {
            if (!res.destroyed && !res.writableEnded) writeJson(res, status, text, deps.draining?.() ?? false);
          },
          // never expected (validateLater never rejects), but a rejection must not end the process
          (err) => {
            log.error({ webhook, err: errField(err, { stack: true }) }, 'admission handler failed');
            if (!res.destroyed && !res.headersSent) writeJson(res, 500, JSON.stringify(errorBody('internal error')), true);
          },
        );
    });
    req.on('error', () => {}); // client went away mid-body: nothing to answer
  };
}

/** The express app for the admission port's other routes (/healthz, /readyz, JSON 404s and errors);
 *  POST /mutate and /validate are answered by createAdmissionListener before express. */
export function createAdmissionApp(deps: AdmissionDeps) {
  const { log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.set('query parser', false);
  if (deps.draining) {
    const draining = deps.draining;
    app.use((_req: Request, res: Response, next: NextFunction) => {
      if (draining()) res.setHeader('Connection', 'close');
      next();
    });
  }
  const probes = probeRoutes(deps.ready);
  app.get('/healthz', probes.healthz);
  app.get('/readyz', probes.readyz);

  app.use((req: Request, res: Response) => {
    httpClientErrors.inc({ status: '404' });
    deps.onRefused?.({ status: 404, method: req.method, path: req.path, remote: req.socket.remoteAddress });
    sendJson(res, 404, errorBody(`no route for ${req.method} ${req.path}`));
  });
  // Any error: JSON, no stack.
  app.use((err: any, req: Request, res: Response, _next: NextFunction) => {
    const status = typeof err?.status === 'number' && err.status >= 400 && err.status < 600 ? err.status : 500;
    if (status < 500) httpClientErrors.inc({ status: String(status) });
    const message = status < 500 ? String(err?.message ?? 'bad request') : 'internal error';
    log.warn({ status, path: printable(cappedText(req.path, 200)), err: status < 500 ? errField(message, { type: typeof err?.type === 'string' ? err.type : 'ClientError' }) : errField(err, { stack: true }) }, 'request failed');
    if (res.headersSent) return;
    sendJson(res, status, errorBody(message));
  });
  return app;
}

function probeRoutes(ready: () => { ready: boolean; detail: Record<string, unknown> }) {
  return {
    healthz: (_req: Request, res: Response) => sendJson(res, 200, { status: 'ok' }),
    readyz: (_req: Request, res: Response) => {
      const r = ready();
      sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r.detail });
    },
  };
}

export function createProbeApp(ready: () => { ready: boolean; detail: Record<string, unknown> }) {
  const app = express();
  app.disable('x-powered-by');
  const probes = probeRoutes(ready);
  app.get('/healthz', probes.healthz);
  app.get('/readyz', probes.readyz);
  app.get('/metrics', async (_req: Request, res: Response) => {
    res.set('Content-Type', registry.contentType).send(await registry.metrics());
  });
  app.use((req: Request, res: Response) => sendJson(res, 404, errorBody(`no route for ${req.method} ${req.path}`)));
  return app;
}

/**
 * Listens; a failure rejects with the error, its `port` set to the port asked for. `::` (every address, IPv6 and
 * IPv4: the Deployment's, so a pod serves whichever family its cluster gives it) falls back to 0.0.0.0 on a node
 * whose kernel has IPv6 turned off.
 */
async function listen(server: http.Server | https.Server, port: number, host: string): Promise<number> {
  try {
    return await listenOn(server, port, host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (host !== '::' || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
    return await listenOn(server, port, '0.0.0.0');
  }
}

function listenOn(server: http.Server | https.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException & { port?: number }) => {
      err.port = port;
      reject(err);
    };
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * A request Node's HTTP parser refuses (a bad Content-Length, Content-Length with Transfer-Encoding, a broken
 * chunk, headers too large) or one that overran its timeout: a JSON error like every other 4xx of the admission
 * port, then the connection closes (Node's own answer has an empty body).
 */
function answerClientError(err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: import('node:stream').Duplex, onRefused?: (r: RefusedRequest) => void): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const message =
    status === 408 ? 'the request took too long to arrive' : status === 431 ? 'the request headers are too large' : `malformed HTTP request (${err.code ?? 'parse error'})`;
  httpClientErrors.inc({ status: String(status) });
  // the request line, where the parser got that far (its raw bytes; a timeout has none)
  const line = Buffer.isBuffer(err.rawPacket) ? /^([A-Z]{1,20}) (\S{1,8192}) HTTP\//.exec(err.rawPacket.subarray(0, 8300).toString('latin1')) : null;
  onRefused?.({ status, method: line?.[1], path: line?.[2], remote: (socket as import('node:net').Socket).remoteAddress });
  const body = JSON.stringify(errorBody(message));
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Failed TLS handshakes on the admission port: each is counted (kagenti_webhook_tls_handshake_errors_total), and a
 * warning line says how many failed since the previous line and what the last one was. The first failure after a
 * quiet minute is reported at once; later ones wait for the minute to pass, so a flood of bad clients writes one
 * line a minute. Returns a function that writes what is still unreported (at shutdown).
 */
function reportHandshakeErrors(server: https.Server, log: Logger, everyMs: number): () => void {
  let count = 0;
  let last: { code?: string; reason?: string; message: string } | undefined;
  let lastPeer: string | undefined;
  // distinct peer addresses since the last line (at most MAX_PEERS_COUNTED kept: a flood from many addresses)
  const peers = new Set<string>();
  const line = atMostEvery(everyMs, (sinceMs) => {
    if (count === 0) return false;
    const since = sinceText(sinceMs);
    const distinct = peers.size >= MAX_PEERS_COUNTED ? `${MAX_PEERS_COUNTED} or more` : String(peers.size);
    log.warn(
      { handshakeErrors: count, sinceLastReportMs: sinceMs, lastError: last, remote: lastPeer, peers: peers.size },
      `${count} TLS handshake${count === 1 ? '' : 's'} on the admission port failed ${since} from ${distinct} address${peers.size === 1 ? '' : 'es'} (the last: ${last?.code ?? 'error'}, ${last?.reason ?? last?.message}, from ${lastPeer ?? 'an unknown address'}). ` +
        'If the API server is among these clients, its calls fail: check that the webhook configurations\' caBundle is the CA of the serving ' +
        'certificate and that the certificate has not expired (kagenti_webhook_tls_certificate_expiry_timestamp_seconds). Other clients ' +
        `that do not trust the certificate or do not speak TLS end up here too (one such line every ${everyMs / 1000} s at most).`,
    );
    count = 0;
    peers.clear();
    return true;
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException & { reason?: unknown }, socket: import('node:tls').TLSSocket) => {
    tlsHandshakeErrors.inc();
    count++;
    lastPeer = socket?.remoteAddress;
    if (lastPeer !== undefined && peers.size < MAX_PEERS_COUNTED) peers.add(lastPeer);
    // OpenSSL's messages run over lines (`...:tls_validate_record_header:http request:<file>:68:\n`); its reason is the part for a person
    const message = String(err.message).split('\n')[0]!.slice(0, 200);
    last = { code: err.code, reason: typeof err.reason === 'string' ? err.reason : undefined, message };
    log.debug({ err: errField(err) }, 'TLS handshake failed');
    line.soon();
  });
  return line.now;
}

/**
 * A warning line written at most once every `everyMs`: `soon()` after an event writes it at once when the last line
 * is that old (or there was none), else when it will be; `now()` writes what is pending (at shutdown). `write`
 * gets the time since the last line written (undefined: none yet) and says whether it wrote one.
 */
function atMostEvery(everyMs: number, write: (sinceMs: number | undefined) => boolean): { soon: () => void; now: () => void } {
  let lastAt: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const now = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const at = Date.now();
    if (write(lastAt === undefined ? undefined : at - lastAt)) lastAt = at;
  };
  const soon = () => {
    if (timer) return;
    const wait = lastAt === undefined ? 0 : lastAt + everyMs - Date.now();
    if (wait <= 0) now();
    else {
      timer = setTimeout(now, wait);
      timer.unref();
    }
  };
  return { soon, now };
}

/** `since start-up`, or `in the last 60 s`: the window of a line atMostEvery writes. */
function sinceText(sinceMs: number | undefined): string {
  return sinceMs === undefined ? 'since start-up' : `in the last ${Math.round(sinceMs / 1000)} s`;
}

/** Distinct peer addresses counted per warning line at most (the count reads `10000 or more` past it). */
const MAX_PEERS_COUNTED = 10_000;

/**
 * Requests refused before a handler saw them (404 for a path or method the port does not serve; 400, 431 and 408 for
 * what Node's HTTP parser refused or a request that took too long): each is counted (http_client_errors_total), and
 * a warning line says how many since the previous line and which was the last (status, method, path, peer). As for
 * failed handshakes, the first after a quiet minute is reported at once and a flood writes one line a minute. A
 * typo in a webhook configuration's path fails every admission it serves: this line names the path called.
 */
function clientErrorReporter(log: Logger, everyMs: number): { note: (r: RefusedRequest) => void; flush: () => void } {
  let count = 0;
  const byStatus: Record<string, number> = {};
  let last: RefusedRequest | undefined;
  const line = atMostEvery(everyMs, (sinceMs) => {
    if (count === 0 || !last) return false;
    const since = sinceText(sinceMs);
    const path = last.path === undefined ? undefined : printable(cappedText(last.path, 200));
    const what = `${last.status} ${last.method ?? '(no method)'} ${path ?? '(no path)'} from ${last.remote ?? 'an unknown address'}`;
    log.warn(
      { requests: count, byStatus: { ...byStatus }, sinceLastReportMs: sinceMs, status: last.status, method: last.method === undefined ? undefined : printable(last.method), path, remote: last.remote },
      `${count} request${count === 1 ? '' : 's'} on the admission port refused before a handler ${since} (the last: ${what}). ` +
        '404: a path or method the port does not serve (a webhook configuration\'s clientConfig.service.path must be /mutate or /validate, and each admission it serves fails as its failurePolicy says; or a scanner); ' +
        `400/431/408: a malformed request, headers too large, or one too slow to arrive (one such line every ${everyMs / 1000} s at most).`,
    );
    count = 0;
    for (const k of Object.keys(byStatus)) delete byStatus[k];
    return true;
  });
  const note = (r: RefusedRequest) => {
    count++;
    byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    last = r;
    line.soon();
  };
  return { note, flush: line.now };
}

/** Timeouts against slow and abusive clients; the API server itself answers within its webhook timeout. */
function harden(server: http.Server, requestTimeout = REQUEST_MS): void {
  server.headersTimeout = 10_000;
  server.requestTimeout = requestTimeout;
  // Longer than the API server keeps an idle connection (client-go's transport: 90 s), so the API server closes
  // idle connections, not we: a close of ours can cross a request it is just sending on that connection, and Go
  // does not retry a POST that was already written (the webhook call fails, and with failurePolicy Fail, so
  // does the pod create).
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.timeout = 120_000;
  server.maxHeadersCount = 100;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  collectProcessMetrics();
  // connections closed since the last warning line (see `report` below)
  const closed: Record<CloseReason | 'body-budget', number> = { quiet: 0, evicted: 0, refused: 0, 'request-timeout': 0, 'body-budget': 0 };
  let notReady = false;
  let active = 0;
  const ready = () => {
    const r = opts.validation.readiness();
    if (notReady) return { ready: false, detail: { ...r.detail, shuttingDown: true } };
    return r;
  };
  const refused = clientErrorReporter(opts.log, opts.clientErrorReportMs ?? CLIENT_ERROR_REPORT_MS);
  const app = createAdmissionListener({
    onRefused: refused.note,
    config: opts.config,
    log: opts.log,
    validation: opts.validation,
    ready,
    track: { begin: () => active++, end: () => active-- },
    draining: () => notReady,
    onBodyCut: () => closed['body-budget']++,
  });
  // handshakeTimeout: a connection that has not finished TLS in 10 s is dropped (Node's default is 120 s), so
  // sockets that never speak TLS cannot pile up.
  // connectionsCheckingInterval: requests that overrun headersTimeout or requestTimeout are ended by a sweep every
  // second instead of every 30 s (Node's default), so each sweep has fewer to end at once. Most never get there:
  // the guard below closes quiet connections and overlong requests first, a few per event-loop turn.
  const tlsServer = https.createServer({ minVersion: 'TLSv1.2', handshakeTimeout: 10_000, connectionsCheckingInterval: 1_000, ...opts.tls }, app);
  harden(tlsServer, REQUEST_MS + REQUEST_BACKSTOP_MS);

  const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const quietMs = opts.quietMs ?? DEFAULT_QUIET_MS;
  const guard = guardConnections(tlsServer, {
    maxConnections,
    quietMs,
    requestMs: REQUEST_MS,
    onClose: (reason) => {
      closed[reason]++;
      connectionsClosed.inc({ reason });
    },
  });
  openConnectionsFrom(guard.open);
  // One line per 10 s at most about connections the server closed, not one per connection.
  const report = setInterval(() => {
    if (!Object.values(closed).some(Boolean)) return;
    opts.log.warn(
      { ...closed, open: guard.open(), maxConnections, quietSeconds: quietMs / 1000, bodyBudgetBytes: MAX_HELD_BODY_BYTES },
      `closed connections: quiet (no request header in time), evicted and refused (to stay under --max-connections), request-timeout (a request still in progress after ${REQUEST_MS / 1000} s), body-budget (sending a body the longest while bodies held passed the budget)`,
    );
    for (const reason of Object.keys(closed) as (keyof typeof closed)[]) closed[reason] = 0;
  }, 10_000);
  report.unref();
  const reportHandshakes = reportHandshakeErrors(tlsServer, opts.log, opts.handshakeReportMs ?? HANDSHAKE_REPORT_MS);
  tlsServer.on('clientError', (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => answerClientError(err, socket, refused.note));
  // Expect: 100-continue with a body declared over the limit: the 413 goes out before the client sends the body
  // (Node's default answer, 100 Continue, would invite 7 MiB and more only to refuse them); otherwise Node's answer.
  tlsServer.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? '';
    const path = url.split('?', 1)[0];
    if (req.method === 'POST' && (path === '/mutate' || path === '/validate') && Number(req.headers['content-length']) > MAX_BODY_BYTES) {
      admissionRequests.inc({ webhook: path === '/mutate' ? 'mutate' : 'validate', operation: 'unknown', result: 'too-large' });
      opts.log.warn({ webhook: path === '/mutate' ? 'mutate' : 'validate', status: 413, remote: req.socket.remoteAddress, expect: '100-continue' }, 'request body too large');
      writeJson(res, 413, JSON.stringify(errorBody(`request body is larger than ${MAX_BODY_BYTES} bytes`)), true);
      return;
    }
    res.writeContinue();
    tlsServer.emit('request', req, res);
  });
  opts.onHttpsServer?.(tlsServer);
  const probe = http.createServer(createProbeApp(ready));
  harden(probe);

  let port: number;
  let probePort: number;
  try {
    port = await listen(tlsServer, opts.port, opts.host).catch((err: Error & { listener?: string }) => {
      throw Object.assign(err, { listener: 'port' });
    });
    probePort = await listen(probe, opts.probePort, opts.host).catch((err: Error & { listener?: string }) => {
      throw Object.assign(err, { listener: 'probe-port' });
    });
  } catch (err) {
    // Neither listener outlives a failed start: the admission port must not answer while the process exits.
    clearInterval(report);
    reportHandshakes();
    refused.flush();
    guard.stop();
    for (const s of [tlsServer, probe]) if (s.listening) s.close();
    throw err;
  }

  const closeServer = (s: http.Server, graceMs: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => s.closeAllConnections(), graceMs);
      timer.unref();
      s.close(() => {
        clearTimeout(timer);
        resolve();
      });
      s.closeIdleConnections();
    });

  return {
    https: tlsServer,
    probe,
    port,
    probePort,
    setNotReady: () => {
      notReady = true;
    },
    inFlight: () => active,
    close: async (graceMs = 10_000) => {
      notReady = true;
      const closing = closeServer(tlsServer, graceMs);
      // connections that never sent a request are invisible to closeIdleConnections(): end them too
      guard.endQuiet();
      await closing;
      clearInterval(report);
      reportHandshakes();
      refused.flush();
      guard.stop();
      await closeServer(probe, 1_000);
    },
  };
}
