// One pino logger for the process: JSON lines on stdout.
import pino from 'pino';
import type { Logger } from 'pino';
import { logLinesDropped } from './metrics.ts';
import { LOG_SERIALIZERS } from './log-fields.ts';

export type { Logger };

/** Lines are written once this many bytes are pending, or FLUSH_MS after the first pending line. */
const BATCH_BYTES = 8 * 1024;
const FLUSH_MS = 50;
/** If stdout stops draining (a stuck log pipe), lines beyond this are dropped instead of filling memory. */
const MAX_PENDING_BYTES = 32 * 1024 * 1024;
/**
 * The most one write takes of the pending lines. sonic-boom has one write in flight and starts the next when the
 * event loop runs the last one's callback, so at most this much leaves per loop iteration. Its default (16 KiB) was
 * less than a saturated server logs per iteration: the pending lines grew to MAX_PENDING_BYTES (about 90 MB more
 * RSS, and lines dropped) once the lines grew by their warnings. 1 MiB drains any rate the server can produce.
 */
const MAX_WRITE_BYTES = 1024 * 1024;

let lastMs = -1;
let lastTime = '';
/** pino's `,"time":"<ISO 8601>"`, formatted once per millisecond instead of once per line. */
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

/** The process logger on stdout; `stream` replaces stdout (the start-up warm-up discards its lines). */
export function createLogger(level = process.env.LOG_LEVEL || 'info', stream?: { write(line: string): boolean }): Logger {
  const options = {
    level,
    base: { service: 'kagenti-webhook' },
    timestamp: isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: LOG_SERIALIZERS,
  };
  if (stream) return pino(options, stream);
  // Asynchronous, batched writes keep logging off the admission hot path: one write per 8 KiB of lines
  // under load instead of one per line (each write is a trip through libuv's thread pool). A line never
  // waits more than FLUSH_MS. Lines gather in one string here and go to sonic-boom (buffer mode) a batch at a
  // time; flush() and flushSync() (pino calls the latter when the process exits) take the pending lines too.
  const dest = pino.destination({
    dest: 1,
    sync: false,
    minLength: BATCH_BYTES,
    maxWrite: MAX_WRITE_BYTES,
    maxLength: MAX_PENDING_BYTES,
    contentMode: 'buffer',
  });
  // lines beyond MAX_PENDING_BYTES are dropped: counted, since they cannot be logged
  dest.on('drop', (data: Buffer | string) => {
    let lines = 0;
    const b = typeof data === 'string' ? Buffer.from(data) : data;
    for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) lines++;
    logLinesDropped.inc(lines);
  });
  const write = dest.write.bind(dest) as unknown as (chunk: Buffer) => boolean;
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  const hand = (): boolean => {
    if (!pending) return true;
    const ok = write(Buffer.from(pending));
    pending = '';
    return ok;
  };
  const flushSoon = () => {
    timer = undefined;
    hand();
    dest.flush();
  };
  dest.write = (line: string): boolean => {
    pending += line;
    if (pending.length >= BATCH_BYTES) return hand();
    if (!timer) {
      timer = setTimeout(flushSoon, FLUSH_MS);
      timer.unref();
    }
    return true;
  };
  const flush = dest.flush.bind(dest);
  dest.flush = ((cb?: (err?: Error) => unknown) => {
    hand();
    flush(cb);
  }) as typeof dest.flush;
  const flushSync = dest.flushSync.bind(dest);
  dest.flushSync = () => {
    hand();
    flushSync();
  };
  return pino(options, dest);
}

/** A logger that writes nothing (tests, benchmarks of the floor). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
