import { parseArgs } from 'node:util';
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

type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/**
 * Strict flag parsing for a command (node:util parseArgs, no positionals): an unknown flag or a missing
 * value is a UsageError naming the command and pointing at its --help.
 */
export function parseFlags(command: string, argv: string[], options: FlagSpec): Record<string, string | string[] | boolean | undefined> {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values as Record<string, string | string[] | boolean | undefined>;
  } catch (err) {
    let msg = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '');
    // `--days -1`: parseArgs will not take a value that starts with '-' without '='
    const ambiguous = /^Option '(-[^']+)' argument is ambiguous\.?$/.exec(msg);
    if (ambiguous) msg = `Option '${ambiguous[1]}' takes no value starting with '-' this way: write ${ambiguous[1]}=VALUE`;
    msg = msg.replace(/\.$/, '');
    throw new UsageError(`${msg} (see kagenti-webhook ${command} --help)`);
  }
}
