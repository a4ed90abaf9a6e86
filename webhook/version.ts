// The version recorded in kagenti.io/authbridge-status and printed by --version. Keep in step with package.json
// (test/cli.test.ts checks that they agree).
export const VERSION = '0.1.0';

/**
 * The build this image was made from (`make image` passes the git commit as the REVISION build argument, which the
 * Dockerfile sets as KAGENTI_WEBHOOK_REVISION), "unknown" elsewhere: package.json's version does not change with every
 * commit, so build_info's revision label is what tells two builds of one version apart during an upgrade. Only
 * letters, digits, '.', '_' and '-', at most 64 (a label value from the environment).
 */
export const REVISION = /^[A-Za-z0-9._-]{1,64}$/.test(process.env.KAGENTI_WEBHOOK_REVISION ?? '') ? process.env.KAGENTI_WEBHOOK_REVISION! : 'unknown';
