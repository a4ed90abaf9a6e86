// One pino logger for the process: JSON lines on stdout.
import pino from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.LOG_LEVEL || 'info'): Logger {
  return pino(
    {
      level,
      base: { service: 'kagenti-webhook' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Asynchronous writes keep logging off the admission hot path; nothing is held back (minLength 0), so a
    // line reaches stdout as soon as the event loop is free, and pino flushes what is pending on exit.
    pino.destination({ dest: 1, sync: false, minLength: 0 }),
  );
}

/** A logger that writes nothing (tests, benchmarks of the floor). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
