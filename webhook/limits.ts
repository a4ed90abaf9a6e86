// The admission server's limits, in one place: the server enforces them, the metrics' help texts quote them.

/**
 * The largest AdmissionReview accepted (413 over it). An UPDATE carries the object and its old version, each up to
 * the API server's 3 MiB request limit, written as JSON, which is larger than what etcd holds (Go escapes `<`, `>`
 * and `&` as six bytes each: an agent's XML-tagged prompt in an env var grows threefold). 7 MiB is what
 * controller-runtime allows for the same reason. MAX_HELD_BODY_BYTES bounds the bodies being read at once, and
 * MAX_WAITING_BODY_BYTES the requests that wait for a check with the API server once read.
 */
export const MAX_BODY_BYTES = 7 * 1024 * 1024;
/**
 * Request bodies held at once, all requests together. Clients that send headers and then trickle a large body
 * each hold up to MAX_BODY_BYTES until REQUEST_MS; 200 of them would hold 1.4 GB. Over this budget the
 * request that has been sending its body the longest is cut (the API server sends a body in milliseconds). Only
 * bodies being read count: a request read and being answered holds its parsed body outside this budget.
 */
export const MAX_HELD_BODY_BYTES = 64 * 1024 * 1024;
/**
 * Request bodies, all requests together, that may wait at once for a check of agents admitted moments ago with the
 * API server (a unique-service-account denial; up to about 4 s, ValidationService.answer). A waiting request holds
 * its parsed object and oldObject, which for a body of tiny JSON values is many times the body's bytes (a 7 MiB body
 * of `{}` parses to about 156 MB): 3 such requests waiting at once filled the 384 MB heap, and so did one waiting
 * while more were parsed one after another. 4 MiB (about 90 MB parsed at worst) leaves room for the parse of the
 * next request. A request that would take the total over this is answered at once with its denial, as a check the
 * API server did not answer (`unanswered`); so a request whose body is over 4 MiB is never checked.
 */
export const MAX_WAITING_BODY_BYTES = 4 * 1024 * 1024;

export const DEFAULT_MAX_CONNECTIONS = 2_000;
export const DEFAULT_QUIET_MS = 5_000;
/**
 * A request in progress this long (from its complete header to the end of its answer) has its connection closed
 * by the connection guard, a few per event-loop turn. The API server waits at most 30 s for a webhook
 * (timeoutSeconds), so nothing it still waits for is cut. Node's own requestTimeout, counted from the request's
 * first byte, is set later (server.ts) and only catches what the guard has not.
 */
export const REQUEST_MS = 30_000;
/**
 * An agent admitted this long ago that the API server does not hold is taken as never stored. The API server
 * stores an object only after every validating webhook and admission plugin has answered, so a create is stored
 * as long after this webhook's answer as the slowest other validating webhook takes (a policy engine such as
 * Kyverno or Gatekeeper can take seconds). One stored later than this is dropped as never stored, and a second agent
 * sent meanwhile on its ServiceAccount admitted (docs/validation.md says so; the audit reports the pair). Not longer:
 * the whole check must fit in the webhooks' timeoutSeconds of 5 s (CONFIRM_BUDGET_MS).
 */
export const CONFIRM_AFTER_MS = 2_000;
/**
 * One confirming list (all its pages) at most this long. Unanswered by then, the claims it was for stand: the denial
 * is kept, as without the check.
 */
export const CONFIRM_LIST_MS = 2_000;
/**
 * What one confirmation may take in all, from its start (waiting for a list slot, the lists, the wait for claims
 * CONFIRM_AFTER_MS old): about 4 s, within the webhooks' timeoutSeconds of 5 s. The claims not decided by then stand.
 */
export const CONFIRM_BUDGET_MS = CONFIRM_AFTER_MS + CONFIRM_LIST_MS;
