// The command line: `kagenti-webhook <command>`. Each command lives in its own module, loaded on demand.
import { printable } from './json.ts';
import { UsageError } from './usage.ts';
import { VERSION } from './version.ts';

export const USAGE = `kagenti-webhook ${VERSION}: workload identity and authentication guard rails for AI-agent pods

Usage: kagenti-webhook <command> [flags]

Commands:
  serve     run the admission webhook (HTTPS /mutate and /validate, probes, metrics)
  inject    preview the injection offline: manifests in, injected YAML out
  lint      check manifests against the webhook's policies before they are applied (CI, GitOps)
  certs     generate a CA and a serving certificate for the webhook Service

Run 'kagenti-webhook <command> --help' for a command's flags.
  -h, --help      show this help
  -v, --version   print the version
`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.ts')).runServe,
  inject: async () => (await import('./inject-cli.ts')).runInject,
  lint: async () => (await import('./lint.ts')).runLint,
  certs: async () => (await import('./certs.ts')).runCertsCommand,
};

/** Exit code when the reader of stdout goes away (`| head`): what a process killed by SIGPIPE reports. */
export const EXIT_STDOUT_GONE = 141;

/** Output nobody reads any more ends the command quietly, as SIGPIPE would; other write errors are one line. */
function onStdoutError(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') process.exit(EXIT_STDOUT_GONE);
  process.stderr.write(`kagenti-webhook: cannot write output: ${err.message}\n`);
  process.exit(2);
}

/** Runs the CLI; resolves to the exit code. Usage errors print one line and give 2. */
export async function main(argv: string[]): Promise<number> {
  if (!process.stdout.listeners('error').includes(onStdoutError)) process.stdout.on('error', onStdoutError);
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '-v' || cmd === '--version' || cmd === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (!Object.hasOwn(COMMANDS, cmd)) {
    process.stderr.write(`kagenti-webhook: unknown command ${JSON.stringify(cmd)} (commands: ${Object.keys(COMMANDS).join(', ')}; see --help)\n`);
    return 2;
  }
  try {
    const run = await COMMANDS[cmd]();
    return await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      // a usage error may quote the input (a file name, a YAML error's text): escaped, one line
      process.stderr.write(`kagenti-webhook ${cmd}: ${printable(err.message)}\n`);
      return 2;
    }
    throw err;
  }
}
