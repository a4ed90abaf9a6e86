// One pino logger for the process: JSON lines on stdout.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

/** Lines are written once this many bytes are pending, or FLUSH_MS after the first pending line. */
const BATCH_BYTES = 8 * 1024;
const FLUSH_MS = 50;
/** If stdout stops draining (a stuck log pipe), lines beyond this are dropped instead of filling memory. */
const MAX_PENDING_BYTES = 32 * 1024 * 1024;

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
  };
  if (stream) return pino(options, stream);
  // Asynchronous, batched writes keep logging off the admission hot path: one write per 8 KiB of lines
  // under load instead of one per line (each write is a trip through libuv's thread pool). A line never
  // waits more than FLUSH_MS, and pino flushes synchronously what is pending when the process exits.
  // Buffer mode: sonic-boom appends each line to a list and joins a batch once per write; in its string mode
  // every line re-measured the whole pending batch (a copy of up to 8 KiB per line).
  const dest = pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES, maxLength: MAX_PENDING_BYTES, contentMode: 'buffer' });
  let timer: NodeJS.Timeout | undefined;
  const flushSoon = () => {
    timer = undefined;
    dest.flush();
  };
  const write = dest.write.bind(dest) as unknown as (chunk: Buffer) => boolean;
  dest.write = (chunk: string): boolean => {
    const ok = write(Buffer.from(chunk));
    if (!timer) {
      timer = setTimeout(flushSoon, FLUSH_MS);
      timer.unref();
    }
    return ok;
  };
  return pino(options, dest);
}

/** A logger that writes nothing (tests, benchmarks of the floor). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
