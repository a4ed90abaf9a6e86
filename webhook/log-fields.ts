// Fields shared by the log lines: one shape for `err` on every line that has one, and caps on free text.
// Pure: no logger here, only what goes into a line.

/**
 * The `err` field of every log line that has one: always an object, so a log store that maps fields by their
 * first value (Elasticsearch) never meets `err` as a string on one line and an object on another.
 * `type`: the error's class (`Error`, `TypeError`, `AdmissionError`...); `message`: one line, with the cause's code
 * and message appended where the error has one (fetch, as an OIDC auth provider's token refresh uses, says only
 * `fetch failed`; the cause says `ECONNREFUSED`); `code`: the error's code or its cause's (`ECONNREFUSED`, `ERR_SSL_...`); `stack`: for
 * internal errors only (a bug to report), at most MAX_STACK characters.
 */
export interface ErrField {
  type: string;
  message: string;
  code?: string;
  stack?: string;
}

export const MAX_STACK = 2000;
const MAX_ERR_MESSAGE = 1000;

function firstLine(s: string, max: number): string {
  const line = s.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
  return line.length > max ? `${line.slice(0, max)}...(${line.length} characters)` : line;
}

function codeOf(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const c = (v as { code?: unknown }).code;
  return typeof c === 'string' || typeof c === 'number' ? String(c) : undefined;
}

/** A value that is not an Error, as text (a rejection with a string or an object). */
function described(v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return `a ${typeof v} that cannot be printed`;
  }
}

/**
 * What went wrong, as the `err` field. `err`: an Error (its class, message and cause), or a message already
 * written (`type` names it then, default `Error`). `stack`: include the stack (internal errors, bugs).
 */
export function errField(err: unknown, opts: { stack?: boolean; type?: string } = {}): ErrField {
  if (!(err instanceof Error)) {
    const out: ErrField = { type: opts.type ?? (typeof err === 'string' ? 'Error' : err === null ? 'null' : typeof err), message: firstLine(described(err), MAX_ERR_MESSAGE) || 'error' };
    const code = codeOf(err);
    if (code !== undefined) out.code = code;
    return out;
  }
  let message = firstLine(String(err.message ?? ''), MAX_ERR_MESSAGE) || err.name;
  let code = codeOf(err);
  // fetch (undici) wraps the socket error: `fetch failed`, with the reason in `cause`
  const cause = (err as { cause?: unknown }).cause;
  if (typeof cause === 'object' && cause !== null) {
    const causeCode = codeOf(cause);
    const causeMessage = cause instanceof Error || typeof (cause as { message?: unknown }).message === 'string' ? firstLine(String((cause as { message: unknown }).message), 300) : '';
    // `connect ECONNREFUSED 10.0.0.1:443` names its code already; `other side closed` does not (UND_ERR_SOCKET)
    const said = causeCode && !causeMessage.includes(causeCode) ? [causeCode, causeMessage].filter(Boolean).join(': ') : causeMessage;
    if (said && !message.includes(said)) message = `${message} (cause: ${said})`;
    code ??= causeCode;
  }
  const out: ErrField = { type: opts.type ?? (err.constructor?.name && err.constructor.name !== 'Object' ? err.constructor.name : err.name || 'Error'), message };
  if (code !== undefined) out.code = code;
  if (opts.stack && typeof err.stack === 'string') out.stack = err.stack.slice(0, MAX_STACK);
  return out;
}

/** Free text for a log field (a skip reason, a detail) that may carry request data: at most `max` characters. */
export function cappedText(s: string, max = 1000): string {
  return s.length <= max ? s : `${s.slice(0, max)}...(${s.length} characters)`;
}

/**
 * The logger's serializers. pino's default for `err` rebuilds any object with a `message` as an Error
 * ({type: its constructor's name, "Object" here, stack: ""}): an ErrField passes through as it is, and an Error
 * logged as it is becomes one (with its stack).
 */
export const LOG_SERIALIZERS = {
  err: (v: unknown): unknown => (v instanceof Error ? errField(v, { stack: true }) : v),
};
