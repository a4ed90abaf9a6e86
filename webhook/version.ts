// The version recorded in kagenti.io/authbridge-status and printed by --version. Keep in step with package.json
// (test/cli.test.ts checks that they agree).
export const VERSION = '0.1.0';
