// The admission server's limits, in one place: the server enforces them, the metrics' help texts quote them.

export const MAX_BODY_BYTES = 3 * 1024 * 1024;
/**
 * Request bodies held at once, all requests together. Clients that send headers and then trickle a large body
 * each hold up to MAX_BODY_BYTES until REQUEST_MS; 200 of them would hold 600 MB. Over this budget the
 * request that has been sending its body the longest is cut (the API server sends a body in milliseconds).
 */
export const MAX_HELD_BODY_BYTES = 64 * 1024 * 1024;

export const DEFAULT_MAX_CONNECTIONS = 2_000;
export const DEFAULT_QUIET_MS = 5_000;
/**
 * A request in progress this long (from its complete header to the end of its answer) has its connection closed
 * by the connection guard, a few per event-loop turn. The API server waits at most 30 s for a webhook
 * (timeoutSeconds), so nothing it still waits for is cut. Node's own requestTimeout, counted from the request's
 * first byte, is set later (server.ts) and only catches what the guard has not.
 */
export const REQUEST_MS = 30_000;
