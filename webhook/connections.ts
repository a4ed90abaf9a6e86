// What idle clients can hold on the admission port. Every open TLS connection costs the server about 60 KB
// (OpenSSL state, buffers, the socket objects), so 10,000 clients that connect and send nothing would take more
// memory than the Deployment's limit; and Node drops connections that sent no request only every 30 s, all at
// once (about 0.1 ms each: a 1.3 s stall for 10,000), which is when every admission waits.
//
// The guard keeps connections in the order they connected (a request changes no collection, only fields of
// the connection's record: a long-lived Map reordered on every request reallocates its table, and the old
// tables fill the old generation) and:
// - closes a connection that has not sent a complete request header within `quietMs` of connecting, a few
//   at a time per event-loop turn, so admissions are answered between them;
// - at `maxConnections`, makes room for a new connection by closing the one idle longest: first one that never
//   sent a request, else a keep-alive connection between requests. A connection with a request in progress is
//   closed only if that request has taken longer than `quietMs` (a client trickling a body, or not reading its
//   answer: the API server's requests take milliseconds), the oldest such first. Only when every connection
//   has a request younger than that is the new one refused;
// - with `requestMs`, closes a connection whose request has been in progress that long (answering 408 when its
//   answer has not started), a few at a time per event-loop turn. Node's own requestTimeout ends every request
//   that has run out in one sweep a second: with 500 clients trickling their bodies, those sweeps stalled
//   admissions up to 31 ms; closed here, 12 ms at most (BENCHMARKS.md, seventh round). The API server gives up on a
//   webhook after at most 30 s, so nothing it still waits for is cut.
// The API server's keep-alive connections carry requests, so they are neither quiet nor the first evicted.
import type net from 'node:net';
import type tls from 'node:tls';
import type http from 'node:http';

export type CloseReason = 'quiet' | 'evicted' | 'refused' | 'request-timeout';

export interface ConnectionLimits {
  /** Open connections at most (TLS handshakes in progress included). */
  maxConnections: number;
  /** A connection that has sent no complete request header this long after connecting is closed. */
  quietMs: number;
  /** A connection whose request (from its complete header to its answer's end) has taken this long is closed;
   *  0 or absent: never (Node's requestTimeout still applies). For pipelined requests the clock is the oldest
   *  one's, from when the connection became busy. */
  requestMs?: number;
  /** How often quiet connections and overlong requests are looked for (default quietMs / 10, at most 500 ms). */
  sweepMs?: number;
  /** Connections closed per event-loop turn (default 8: about 0.6 ms of work). */
  batch?: number;
  /** Called once for every connection the guard closes or refuses. */
  onClose?: (reason: CloseReason) => void;
}

export interface ConnectionGuard {
  /** Connections open now. */
  open(): number;
  /** Ends every connection that finished TLS but has never sent a request (shutdown). One still in its handshake
   *  is left to finish: its request may be on the way. */
  endQuiet(): void;
  /** Stops the sweeper (the server is closing). */
  stop(): void;
}

interface Conn {
  raw: net.Socket;
  tls?: tls.TLSSocket;
  /** When the connection opened (ms, performance.now()). */
  opened: number;
  /** When the connection opened or last finished a request (ms, performance.now()). */
  since: number;
  /** Requests in progress (more than one when pipelined). */
  busy: number;
  /** When the oldest request in progress began (ms, performance.now()). */
  busySince: number;
  /** The answer to the oldest request in progress. */
  res?: http.ServerResponse;
  /** Has sent at least one complete request header. */
  served: boolean;
}

/** The 408: a JSON error, as every other 4xx of the admission port. */
const REQUEST_TIMEOUT_BODY = JSON.stringify({ error: 'the request took too long to arrive' });
const REQUEST_TIMEOUT = `HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(REQUEST_TIMEOUT_BODY)}\r\nConnection: close\r\n\r\n${REQUEST_TIMEOUT_BODY}`;

/** The TCP socket a server-side TLSSocket wraps. Node keeps it in `_parent`; test/connections.test.ts checks
 *  that this still holds on the pinned Node version. */
function rawOf(s: tls.TLSSocket): net.Socket | undefined {
  return (s as unknown as { _parent?: net.Socket })._parent ?? undefined;
}

/** Guards the connections of an HTTPS server (call before it listens). */
export function guardConnections(server: net.Server, limits: ConnectionLimits): ConnectionGuard {
  const { maxConnections, quietMs } = limits;
  const requestMs = limits.requestMs ?? 0;
  const sweepMs = limits.sweepMs ?? Math.min(500, Math.max(10, Math.floor(quietMs / 10)));
  const batch = limits.batch ?? 8;
  const onClose = limits.onClose ?? (() => {});
  // In the order connections opened.
  const conns = new Map<net.Socket, Conn>();
  const byTls = new WeakMap<tls.TLSSocket, Conn>();
  // Node's own cap, a little above ours: it refuses at accept while evicted sockets are still closing.
  server.maxConnections = maxConnections + 64;
  server.on('drop', () => onClose('refused'));

  const end = (c: Conn, reason: CloseReason) => {
    conns.delete(c.raw);
    const s = c.tls ?? c.raw;
    // as Node answers a request that overran requestTimeout, when nothing of the answer has gone out yet
    if (reason === 'request-timeout' && c.tls && c.res && !c.res.headersSent && s.writable) s.write(REQUEST_TIMEOUT);
    s.destroy();
    onClose(reason);
  };

  /** The connection to close for room: the longest-idle one that never sent a request (the first such, as they
   *  are in the order they opened), else the longest-idle, else the one whose request has been in progress
   *  longest, if longer than quietMs. */
  const victim = (): Conn | undefined => {
    let idle: Conn | undefined;
    let stuck: Conn | undefined;
    for (const c of conns.values()) {
      if (c.busy > 0) {
        if (!stuck || c.busySince < stuck.busySince) stuck = c;
        continue;
      }
      if (!c.served) return c;
      if (!idle || c.since < idle.since) idle = c;
    }
    if (idle) return idle;
    return stuck && performance.now() - stuck.busySince > quietMs ? stuck : undefined;
  };

  server.on('connection', (raw: net.Socket) => {
    if (conns.size >= maxConnections) {
      const v = victim();
      if (!v) {
        raw.destroy();
        onClose('refused');
        return;
      }
      end(v, 'evicted');
    }
    const now = performance.now();
    const c: Conn = { raw, opened: now, since: now, busy: 0, busySince: 0, served: false };
    conns.set(raw, c);
    raw.once('close', () => {
      if (conns.get(raw) === c) conns.delete(raw);
    });
  });
  server.on('secureConnection', (s: tls.TLSSocket) => {
    const raw = rawOf(s);
    const c = raw && conns.get(raw);
    if (!c) return;
    c.tls = s;
    byTls.set(s, c);
    s.once('close', () => {
      if (conns.get(c.raw) === c) conns.delete(c.raw);
    });
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const c = byTls.get(req.socket as tls.TLSSocket);
    if (!c) return;
    if (c.busy++ === 0) {
      c.busySince = performance.now();
      c.res = res;
    }
    c.served = true;
    res.once('close', () => {
      if (--c.busy === 0) {
        c.since = performance.now();
        c.res = undefined;
      }
    });
  });

  let sweeping = false;
  const sweep = () => {
    const now = performance.now();
    const quietCutoff = now - quietMs;
    const requestCutoff = requestMs > 0 ? now - requestMs : -Infinity;
    // a request begins after its connection opened, so neither rule can apply to a connection opened after both cutoffs
    const last = Math.max(quietCutoff, requestCutoff);
    let n = 0;
    for (const c of conns.values()) {
      if (c.opened > last) break; // the rest opened later
      let reason: CloseReason;
      if (c.busy > 0) {
        if (c.busySince >= requestCutoff) continue;
        reason = 'request-timeout';
      } else {
        if (c.served || c.opened > quietCutoff) continue; // keep-alive connections time out by keepAliveTimeout
        reason = 'quiet';
      }
      end(c, reason);
      if (++n === batch) {
        // more to close: let the admissions waiting in this turn be answered first
        sweeping = true;
        setImmediate(sweep);
        return;
      }
    }
    sweeping = false;
  };
  const timer = setInterval(() => {
    if (!sweeping) sweep();
  }, sweepMs);
  timer.unref();

  return {
    open: () => conns.size,
    endQuiet: () => {
      for (const c of [...conns.values()]) if (c.tls && !c.served && c.busy === 0) c.tls.end();
    },
    stop: () => clearInterval(timer),
  };
}
