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
    // Asynchronous, buffered writes keep logging off the admission hot path; pino flushes on exit.
    pino.destination({ dest: 1, sync: false, minLength: 4096 }),
  );
}

/** A logger that writes nothing (tests, benchmarks of the floor). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
