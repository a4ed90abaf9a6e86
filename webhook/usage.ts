// Errors that end a command with exit code 2 and one line on stderr (bad flags, unreadable files, bad config).
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parses a whole-number flag value; throws UsageError naming the flag. */
export function intFlag(name: string, value: string | undefined, fallback: number, min = 0, max = 65535): number {
  if (value === undefined) return fallback;
  if (!/^[0-9]+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}
