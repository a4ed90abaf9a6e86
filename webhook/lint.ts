// `kagenti-webhook lint`: the webhook's policies over manifests, before anything is applied.
// (work in progress: the full command lands in the next commits)
export async function runLint(argv: string[]): Promise<number> {
  void argv;
  process.stderr.write('kagenti-webhook lint: not implemented yet\n');
  return 2;
}
