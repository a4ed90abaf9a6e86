// manifests/preflight.sh, run by `make deploy` before anything is applied: it refuses clusters that would drop
// the webhooks' matchConditions, and (for the overlays whose render has cert-manager objects) clusters without
// cert-manager. Then the Makefile's deploy and undeploy, and manifests/filter-kinds.sh, which both use. There is
// no API server here: a stand-in `kubectl` prints what `kubectl version -o json` prints (server part as the API
// server reports it, e.g. EKS's "30+"), answers `get crd` and `get` of the webhook configurations, runs the real
// `kubectl kustomize`, and logs every call with the kinds of the documents it was given on stdin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT, copyManifests } from './helpers.ts';

interface Fake {
  /** the cluster's version; null: unreachable (kubectl prints the client part and exits 1) */
  server?: { major: string; minor: string } | null;
  /** whether cert-manager's CRD certificates.cert-manager.io exists (default true) */
  certManager?: boolean;
  /** what `get crd certificates.cert-manager.io` prints on stderr when it fails for another reason than NotFound */
  crdError?: string;
  /** exit code of `rollout status` (default 0) */
  rolloutCode?: number;
  /** whether both webhook configurations kagenti-webhook exist (an upgrade; default false, a first install), or only the mutating one */
  webhooks?: boolean | 'mutating';
  /** `delete -f -` fails (kubectl's "no matches for kind Certificate" once cert-manager's CRDs are gone) */
  deleteFails?: boolean;
  /** `kustomize` fails, as the self-signed overlay does before `make certs` (default: the real kubectl kustomize) */
  kustomizeFails?: boolean;
  /** what `get nodes` prints, "name kubeletVersion" a line (default: no nodes), or the error it fails with */
  nodes?: string[] | { error: string };
  /** the image of the running Deployment kagenti-webhook's container webhook (default: no Deployment) */
  deployImage?: string;
}

/**
 * The environment the scripts under test run in: the test's own, in the C locale. Otherwise a LC_ALL that names a
 * locale this machine does not have makes bash print a `setlocale` warning, and an installed one can translate make's
 * messages, on the stderr these tests read.
 */
function scriptEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C' };
}

const REAL_KUBECTL = spawnSync('bash', ['-c', 'command -v kubectl'], { encoding: 'utf8' }).stdout.trim();

/** Writes the stand-in kubectl into dir; its calls go to dir/log, one line each ("args", then "  stdin: kinds", and
 * "  images: ..." when the documents it was given name images). */
function fakeKubectl(dir: string, fake: Fake = {}): { kubectl: string; calls: () => string[] } {
  const server = fake.server === undefined ? { major: '1', minor: '31' } : fake.server;
  const client = { major: '1', minor: '32', gitVersion: 'v1.32.4' };
  const out = server ? { clientVersion: client, serverVersion: { ...server, gitVersion: `v${server.major}.${server.minor}` } } : { clientVersion: client };
  const log = join(dir, 'log');
  writeFileSync(log, '');
  const nodes = join(dir, 'nodes');
  writeFileSync(nodes, Array.isArray(fake.nodes) ? fake.nodes.map((n) => `${n}\n`).join('') : (fake.nodes?.error ?? ''));
  const crdError = join(dir, 'crd-error');
  writeFileSync(crdError, fake.crdError ?? '');
  const kubectl = join(dir, 'kubectl');
  writeFileSync(
    kubectl,
    // A call that reads stdin logs once it has read it all, so the kustomize that feeds it is logged first.
    `#!/usr/bin/env bash
case " $* " in
  *" -f - "*)
    input="$(cat)"
    kinds="$(printf '%s\\n' "$input" | sed -n 's/^kind: *//p' | tr '\\n' ' ' | sed 's/ $//')"
    images="$(printf '%s\\n' "$input" | sed -n 's/^[ -]*image: //p' | tr '\\n' ' ' | sed 's/ $//')"
    printf '%s\\n  stdin: %s\\n' "$*" "$kinds" >> '${log}'
    [ -z "$images" ] || printf '  images: %s\\n' "$images" >> '${log}'
    ${fake.deleteFails ? `case " $* " in *" delete "*) echo 'error: resource mapping not found for name: "kagenti-webhook-ca" namespace: "kagenti-system" from "STDIN": no matches for kind "Certificate" in version "cert-manager.io/v1"' >&2; exit 1 ;; esac` : ':'}
    exit 0 ;;
esac
printf '%s\\n' "$*" >> '${log}'
case " $* " in
  *" version -o json "*)
    cat <<'JSON'
${JSON.stringify(out, null, 2)}
JSON
    exit ${server ? 0 : 1} ;;
  *" kustomize "*)
    ${fake.kustomizeFails ? `echo 'error: must build at directory: not a valid directory' >&2; exit 1` : `exec '${REAL_KUBECTL}' kustomize "\${@: -1}"`} ;;
  *" get crd certificates.cert-manager.io "*)
    ${
      fake.crdError !== undefined
        ? `cat '${crdError}' >&2; exit 1`
        : fake.certManager === false
          ? `echo 'Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io "certificates.cert-manager.io" not found' >&2; exit 1`
          : 'echo customresourcedefinition.apiextensions.k8s.io/certificates.cert-manager.io'
    } ;;
  *" get mutatingwebhookconfiguration/kagenti-webhook --ignore-not-found -o name "*)
    ${fake.webhooks ? 'echo mutatingwebhookconfiguration.admissionregistration.k8s.io/kagenti-webhook' : ':'} ;;
  *" get validatingwebhookconfiguration/kagenti-webhook --ignore-not-found -o name "*)
    ${fake.webhooks === true ? 'echo validatingwebhookconfiguration.admissionregistration.k8s.io/kagenti-webhook' : ':'} ;;
  *" rollout status "*) exit ${fake.rolloutCode ?? 0} ;;
  *" get deploy/kagenti-webhook --ignore-not-found "*)
    ${fake.deployImage ? `printf '%s' '${fake.deployImage}'` : ':'} ;;
  *" get nodes "*)
    ${fake.nodes && !Array.isArray(fake.nodes) ? `cat '${nodes}' >&2; exit 1` : `cat '${nodes}'`} ;;
esac
exit 0
`,
  );
  chmodSync(kubectl, 0o755);
  return { kubectl, calls: () => readFileSync(log, 'utf8').split('\n').filter((l) => l !== '') };
}

function withDir<T>(f: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'preflight-'));
  try {
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  calls: string[];
}

interface PreflightOpts {
  certManager?: boolean;
  nodes?: Fake['nodes'];
  crdError?: string;
  kustomizeFails?: boolean;
  /** OVERLAY; a function makes one in the test's directory and returns its path relative to manifests/ */
  overlay?: string | ((dir: string) => string);
  kubectlArgs?: string;
  /** the manifests directory whose preflight.sh runs (default: the repository's) */
  manifests?: string;
}

function preflight(server: { major: string; minor: string } | null, opts: PreflightOpts = {}): Run {
  return withDir((dir) => {
    const fake = fakeKubectl(dir, { server, certManager: opts.certManager, crdError: opts.crdError, kustomizeFails: opts.kustomizeFails, nodes: opts.nodes });
    const env: NodeJS.ProcessEnv = { ...scriptEnv(), KUBECTL: `${fake.kubectl}${opts.kubectlArgs ?? ''}` };
    delete env.OVERLAY;
    if (opts.overlay !== undefined) env.OVERLAY = typeof opts.overlay === 'string' ? opts.overlay : opts.overlay(dir);
    const r = spawnSync('bash', [join(opts.manifests ?? join(ROOT, 'manifests'), 'preflight.sh')], { env, encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, calls: fake.calls() };
  });
}

test('preflight: 1.30 and later (EKS writes "30+") pass', () => {
  for (const minor of ['30', '30+', '33']) {
    const r = preflight({ major: '1', minor });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^preflight: Kubernetes 1\.3\d: ok\n$/);
  }
});

test('preflight: 1.28 and 1.29 pass with a note on the beta feature gate', () => {
  const r = preflight({ major: '1', minor: '29+' });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /matchConditions are beta here \(feature gate AdmissionWebhookMatchConditions.*; installing\./);
});

test('preflight: the go-ahead is printed only once every check passed (1.28 without cert-manager says no "installing")', () => {
  for (const minor of ['28', '31']) {
    const r = preflight({ major: '1', minor }, { certManager: false });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '', `1.${minor}`);
    assert.match(r.stderr, /^preflight: cert-manager not found/);
  }
});

test('preflight: before 1.28 nothing is applied, and the line says why', () => {
  const r = preflight({ major: '1', minor: '27' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^preflight: Kubernetes 1\.27 is too old: the webhooks need matchConditions .* Nothing was applied\.\n$/);
});

test('preflight: an unreachable cluster stops with exit 2', () => {
  const r = preflight(null);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /could not read the cluster's version/);
});

test('preflight: the cert-manager overlays need cert-manager\'s Certificate CRD; self-signed does not', () => {
  for (const overlay of [undefined, 'default', 'with-network-policy']) {
    for (const minor of ['29', '31']) {
      const r = preflight({ major: '1', minor }, { certManager: false, overlay });
      assert.equal(r.code, 1, `${overlay} 1.${minor}: ${r.stderr}`);
      assert.ok(r.calls.includes('get crd certificates.cert-manager.io -o name'), r.calls.join('\n'));
      assert.match(
        r.stderr,
        new RegExp(
          `^preflight: cert-manager not found: '.*kubectl get crd certificates\\.cert-manager\\.io' failed \\(Error from server \\(NotFound\\): .*\\)\\. manifests/${overlay ?? 'default'} gets the webhook's serving certificate from cert-manager: .* Install cert-manager first, or deploy with OVERLAY=self-signed\\. Nothing was applied\\.\\n$`,
        ),
      );
    }
    const ok = preflight({ major: '1', minor: '31' }, { certManager: true, overlay });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, 'preflight: Kubernetes 1.31: ok\n');
  }
  const selfSigned = preflight({ major: '1', minor: '31' }, { certManager: false, overlay: 'self-signed' });
  assert.equal(selfSigned.code, 0, selfSigned.stderr);
  assert.ok(!selfSigned.calls.some((c) => c.includes('get crd')), selfSigned.calls.join('\n'));
  // too old is said first: cert-manager is not asked about
  const old = preflight({ major: '1', minor: '27' }, { certManager: false });
  assert.equal(old.code, 1);
  assert.match(old.stderr, /is too old/);
});

test('preflight: a `get crd` that fails for another reason than NotFound is exit 2, with the error\'s first line', () => {
  for (const err of [
    'Error from server (Forbidden): customresourcedefinitions.apiextensions.k8s.io "certificates.cert-manager.io" is forbidden: User "dev" cannot get resource "customresourcedefinitions"',
    'E1123 10:00:00.000000   123 memcache.go:265] couldn\'t get current server API group list: Get "https://10.0.0.1:6443/api?timeout=32s": dial tcp 10.0.0.1:6443: connect: connection refused\nThe connection to the server 10.0.0.1:6443 was refused - did you specify the right host or port?',
  ]) {
    for (const minor of ['29', '31']) {
      const r = preflight({ major: '1', minor }, { crdError: err });
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^preflight: could not ask the cluster whether cert-manager is installed: '.*kubectl get crd certificates\.cert-manager\.io' failed \((.*)\)\. .* Nothing was applied\.\n$/);
      assert.ok(r.stderr.includes(`failed (${err.split('\n')[0]}).`), r.stderr);
      assert.doesNotMatch(r.stderr, /cert-manager not found|was refused/);
    }
  }
});

/** manifests/self-signed and an overlay of one's own on it (the PodMonitor component, as install.md suggests), in
 * dir; certificates as files (kustomize only reads them). Returns OVERLAY: the path relative to manifests/. */
function overlayOn(base: 'default' | 'self-signed', dir: string): string {
  const manifests = join(ROOT, 'manifests');
  let baseDir = join(manifests, 'default');
  if (base === 'self-signed') {
    baseDir = join(dir, 'self-signed');
    mkdirSync(join(baseDir, 'certs'), { recursive: true });
    for (const f of ['ca.crt', 'tls.crt', 'tls.key']) writeFileSync(join(baseDir, 'certs', f), 'not checked by kustomize\n');
    const kustomization = readFileSync(join(manifests, 'self-signed', 'kustomization.yaml'), 'utf8');
    assert.match(kustomization, /^  - \.\.\/base$/m);
    writeFileSync(join(baseDir, 'kustomization.yaml'), kustomization.replace(/^  - \.\.\/base$/m, `  - ${relative(baseDir, join(manifests, 'base'))}`));
  }
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  writeFileSync(
    join(mine, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${relative(mine, baseDir)}\ncomponents:\n  - ${relative(mine, join(manifests, 'components', 'pod-monitor'))}\n`,
  );
  return relative(manifests, mine);
}

test('preflight: whether cert-manager is needed is read from the render: an overlay of one\'s own on self-signed needs none', () => {
  const onSelfSigned = preflight({ major: '1', minor: '31' }, { certManager: false, overlay: (dir) => overlayOn('self-signed', dir) });
  assert.equal(onSelfSigned.code, 0, onSelfSigned.stderr);
  assert.equal(onSelfSigned.stdout, 'preflight: Kubernetes 1.31: ok\n');
  assert.ok(onSelfSigned.calls.some((c) => /^kustomize .*\/mine$/.test(c)), onSelfSigned.calls.join('\n'));
  assert.ok(!onSelfSigned.calls.some((c) => c.includes('get crd')), onSelfSigned.calls.join('\n'));
  const onDefault = preflight({ major: '1', minor: '31' }, { certManager: false, overlay: (dir) => overlayOn('default', dir) });
  assert.equal(onDefault.code, 1, onDefault.stderr);
  assert.match(onDefault.stderr, /^preflight: cert-manager not found: .* manifests\/\.\..*\/mine gets the webhook's serving certificate from cert-manager/);
});

test('preflight: when the overlay does not render (self-signed before `make certs`), its name decides', () => {
  const selfSigned = preflight({ major: '1', minor: '31' }, { certManager: false, overlay: 'self-signed', kustomizeFails: true });
  assert.equal(selfSigned.code, 0, selfSigned.stderr);
  // its config is base's: read from base's render (which fails here too: every kustomize does)
  assert.deepEqual(selfSigned.calls.slice(1), [`kustomize ${join(ROOT, 'manifests', 'self-signed')}`, `kustomize ${join(ROOT, 'manifests', 'base')}`, NODES_CALL]);
  for (const overlay of ['./self-signed', 'self-signed/']) assert.equal(preflight({ major: '1', minor: '31' }, { certManager: false, overlay, kustomizeFails: true }).code, 0, overlay);
  // any other overlay that does not render is not guessed at: its error, and the likely cause
  for (const overlay of ['default', 'mine']) {
    const r = preflight({ major: '1', minor: '31' }, { certManager: false, overlay, kustomizeFails: true });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^preflight: manifests\/\S+ does not render \(error: must build at directory: not a valid directory\)\. An overlay built on self-signed needs its certificates first: make certs\. Nothing was applied\.\n$/);
  }
});

/** The call that reads the nodes' kubelet versions, as the stand-in logs it. */
const NODES_CALL = 'get nodes -o jsonpath={range .items[*]}{.metadata.name}{" "}{.status.nodeInfo.kubeletVersion}{"\\n"}{end}';

/** An overlay of one's own whose config turns native sidecars on for every agent (or is `config`); returns OVERLAY. */
function nativeOverlay(dir: string, config = 'featureGates:\n  nativeSidecars: true\n', extra = ''): string {
  const manifests = join(ROOT, 'manifests');
  const mine = join(dir, 'native');
  mkdirSync(mine);
  writeFileSync(join(mine, 'config.yaml'), config);
  if (extra) writeFileSync(join(mine, 'extra.yaml'), extra);
  writeFileSync(
    join(mine, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kagenti-system\nresources:\n  - ${relative(mine, join(manifests, 'default'))}\n${extra ? '  - extra.yaml\n' : ''}configMapGenerator:\n  - name: kagenti-webhook-config\n    behavior: replace\n    files:\n      - config.yaml\n`,
  );
  return relative(manifests, mine);
}

test('preflight: the oldest kubelet is printed before the go-ahead; native sidecars need 1.29 on the nodes, not only the API server', () => {
  const current = preflight({ major: '1', minor: '31' }, { nodes: ['a v1.31.2', 'b v1.29.3-eks-ae9a62a', 'c v1.30.0+k3s1'] });
  assert.equal(current.code, 0, current.stderr);
  assert.equal(current.stdout, 'preflight: oldest kubelet: v1.29.3-eks-ae9a62a (node b): native sidecars work on every node.\npreflight: Kubernetes 1.31: ok\n');
  assert.ok(current.calls.includes(NODES_CALL), current.calls.join('\n'));
  // kubelets lag the API server (three minors allowed): said, not refused, while the config leaves native sidecars off
  const lagging = preflight({ major: '1', minor: '31' }, { nodes: ['a v1.31.2', 'b v1.27.9', 'c v1.28.5'] });
  assert.equal(lagging.code, 0, lagging.stderr);
  const [note, goAhead, ...rest] = lagging.stdout.split('\n');
  assert.deepEqual([goAhead, rest], ['preflight: Kubernetes 1.31: ok', ['']]);
  assert.match(note!, /^preflight: oldest kubelet: v1\.27\.9 \(node b; 2 of 3 nodes are older than 1\.29\)\. Native sidecars .* need kubelet 1\.29 or later, or 1\.28 with the SidecarContainers feature gate on: without it a 1\.28 node fails such a pod \(InitContainerRestartPolicyForbidden\), and on an older one it stays in Init \(spiffe-helper never exits\)\. Upgrade those nodes, keep agents off them, or leave native sidecars off\.$/);
  // no nodes (yet): nothing to say
  assert.equal(preflight({ major: '1', minor: '31' }, { nodes: [] }).stdout, 'preflight: Kubernetes 1.31: ok\n');
});

test('preflight: a config that turns native sidecars on refuses a kubelet older than 1.28 (exit 1, nothing applied), and asks for the gate on 1.28', () => {
  withDir((dir) => {
    const overlay = nativeOverlay(dir);
    const old = preflight({ major: '1', minor: '30' }, { overlay, nodes: ['a v1.30.1', 'b v1.27.9'] });
    assert.equal(old.code, 1, old.stderr);
    assert.equal(old.stdout, '');
    assert.match(old.stderr, /^preflight: manifests\/\S+'s config sets featureGates\.nativeSidecars: true, but node b runs kubelet v1\.27\.9 \(1 of 2 nodes are older than 1\.28\)\. .* spiffe-helper runs as an ordinary init container that never exits, so every agent pod scheduled there stays in Init\. Upgrade those nodes, or set featureGates\.nativeSidecars: false in the config\. Nothing was applied\.\n$/);
    const gate = preflight({ major: '1', minor: '30' }, { overlay, nodes: ['a v1.30.1', 'b v1.28.5'] });
    assert.equal(gate.code, 0, gate.stderr);
    assert.match(gate.stdout, /^preflight: oldest kubelet: v1\.28\.5 .* The config turns them on for every agent: make sure each 1\.28 node has the gate on\. .*\npreflight: Kubernetes 1\.30: ok\n$/);
    const current = preflight({ major: '1', minor: '30' }, { overlay, nodes: ['a v1.30.1'] });
    assert.equal(current.code, 0, current.stderr);
  });
  // the default config leaves them off: the same nodes are a note only
  const dflt = preflight({ major: '1', minor: '30' }, { nodes: ['a v1.30.1', 'b v1.27.9'] });
  assert.equal(dflt.code, 0, dflt.stderr);
  assert.doesNotMatch(dflt.stdout, /The config turns them on/);
});

test('preflight: only featureGates.nativeSidecars in the config file of kagenti-webhook-config counts, not a comment or another object', () => {
  const OLD_NODES = ['a v1.30.1', 'b v1.27.9'];
  const refused = (config: string, extra = '') =>
    withDir((dir) => {
      const r = preflight({ major: '1', minor: '30' }, { overlay: nativeOverlay(dir, config, extra), nodes: OLD_NODES });
      assert.ok(r.code === 0 || r.code === 1, r.stderr);
      return r.code === 1;
    });
  // a comment that mentions the value, on the line or on its own line, in the config and in another object
  assert.equal(refused('featureGates:\n  nativeSidecars: false  # nativeSidecars: true needs kubelet 1.29\n  # nativeSidecars: true\n'), false);
  assert.equal(refused('# featureGates: {nativeSidecars: true}\nfeatureGates:\n  injectTools: true\n'), false);
  assert.equal(refused('trustDomain: example.org\n', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: agent-settings\ndata:\n  config.yaml: |\n    featureGates:\n      nativeSidecars: true\n'), false);
  // another key's child of that name, elsewhere in the config
  assert.equal(refused('authBridge:\n  nativeSidecars: true\nfeatureGates:\n  globalEnabled: true\n'), false);
  // the value itself, as a block (after a comment) or a one-line mapping
  assert.equal(refused('featureGates:\n  # on for every agent\n  globalEnabled: true\n  nativeSidecars: true # every node runs 1.29\n'), true);
  assert.equal(refused('featureGates: {globalEnabled: true, nativeSidecars: true}\n'), true);
});

test('preflight: a config.yaml kustomize writes as a quoted string (a line ending in spaces, a tab, a one-line file) is read too', () => {
  const OLD_NODES = ['a v1.30.1', 'b v1.27.9'];
  const run = (config: string) =>
    withDir((dir) => {
      const overlay = nativeOverlay(dir, config);
      // the form under test is the one kustomize writes, not a block
      const render = execFileSync(REAL_KUBECTL, ['kustomize', join(ROOT, 'manifests', overlay)], { encoding: 'utf8' });
      const r = preflight({ major: '1', minor: '30' }, { overlay, nodes: OLD_NODES });
      assert.ok(r.code === 0 || r.code === 1, r.stderr);
      return { refused: r.code === 1, quoted: /^ {2}config\.yaml: ["']/m.test(render), stdout: r.stdout };
    });
  // double-quoted (\n, \t, \" and \\ escaped): a trailing space on the value's line, or a tab in a comment elsewhere
  assert.deepEqual(run('featureGates:\n  nativeSidecars: true \n'), { refused: true, quoted: true, stdout: '' });
  assert.deepEqual(run('featureGates:\n  nativeSidecars: true\n  # \tevery node runs 1.29\n'), { refused: true, quoted: true, stdout: '' });
  assert.deepEqual(run('trustDomain: "a\\\\b \\"c\\""\t\nfeatureGates:\n  nativeSidecars: true\n'), { refused: true, quoted: true, stdout: '' });
  // the comment still does not count, nor does the escaped text of another key
  const off = run('featureGates:\n  nativeSidecars: false \n  # nativeSidecars: true\t\n');
  assert.deepEqual([off.refused, off.quoted], [false, true]);
  assert.doesNotMatch(off.stdout, /could not read featureGates/);
  assert.equal(run('trustDomain: "nativeSidecars: true\\nfeatureGates: {nativeSidecars: true}"\t\n').refused, false);
  // a long file: kustomize folds the string over several lines (the repository's config, its gate on with a trailing space)
  const base = readFileSync(join(ROOT, 'manifests', 'base', 'config.yaml'), 'utf8').replace(/^ {2}nativeSidecars: false$/m, '  nativeSidecars: true ');
  assert.deepEqual(run(base), { refused: true, quoted: true, stdout: '' });
  // a one-line file (no line break at its end): single quotes
  assert.deepEqual(run('featureGates: {nativeSidecars: true}'), { refused: true, quoted: true, stdout: '' });
});

test('preflight: a config it cannot read is said to be unknown (a note with the kubelet one), not taken as off', () => {
  withDir((dir) => {
    // kagenti-webhook-config without a config.yaml key: the file is not in the render
    const mine = join(dir, 'nokey');
    mkdirSync(mine);
    writeFileSync(join(mine, 'settings.yaml'), 'featureGates:\n  nativeSidecars: true\n');
    writeFileSync(
      join(mine, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: kagenti-system\nresources:\n  - ${relative(mine, join(ROOT, 'manifests', 'default'))}\nconfigMapGenerator:\n  - name: kagenti-webhook-config\n    behavior: replace\n    files:\n      - settings.yaml\n`,
    );
    const overlay = relative(join(ROOT, 'manifests'), mine);
    const old = preflight({ major: '1', minor: '30' }, { overlay, nodes: ['a v1.30.1', 'b v1.27.9'] });
    assert.equal(old.code, 0, old.stderr);
    const [kubelet, note, goAhead, ...rest] = old.stdout.split('\n');
    assert.match(kubelet!, /^preflight: oldest kubelet: v1\.27\.9 \(node b; 1 of 2 nodes are older than 1\.29\)\. /);
    assert.match(note!, /^preflight: could not read featureGates\.nativeSidecars from manifests\/\S+'s config \(the config\.yaml of ConfigMap kagenti-webhook-config: not in the render, or in a form this script does not read\), so whether the config turns native sidecars on is unknown, not off: if it does, every agent pod scheduled on a node older than 1\.28 stays in Init\. Check the config's featureGates before deploying\.$/);
    assert.deepEqual([goAhead, rest], ['preflight: Kubernetes 1.30: ok', ['']]);
    const gate = preflight({ major: '1', minor: '30' }, { overlay, nodes: ['a v1.30.1', 'b v1.28.5'] });
    assert.match(gate.stdout, /\npreflight: could not read featureGates\.nativeSidecars .* if it does, make sure each 1\.28 node has the SidecarContainers gate on\. /);
    // every kubelet 1.29 or later: the config changes nothing, no note
    const current = preflight({ major: '1', minor: '30' }, { overlay, nodes: ['a v1.30.1'] });
    assert.equal(current.stdout, 'preflight: oldest kubelet: v1.30.1 (node a): native sidecars work on every node.\npreflight: Kubernetes 1.30: ok\n');
  });
});

test('preflight: a config in a form it does not follow (JSON, a quoted key, a {...} over several lines) is unknown, not off', () => {
  const OLD_NODES = ['a v1.30.1', 'b v1.27.9'];
  const run = (config: string) =>
    withDir((dir) => {
      const r = preflight({ major: '1', minor: '30' }, { overlay: nativeOverlay(dir, config), nodes: OLD_NODES });
      assert.ok(r.code === 0 || r.code === 1, r.stderr);
      return r.code === 1 ? 'refused' : /\npreflight: could not read featureGates\.nativeSidecars from manifests\/\S+'s config .* so whether the config turns native sidecars on is unknown, not off: /.test(r.stdout) ? 'unknown' : 'off';
    });
  // forms serve reads as on, that this script does not follow: said to be unknown (and what it would mean)
  for (const config of [
    '{"featureGates": {"nativeSidecars": true}}\n',
    '{"featureGates": {"nativeSidecars": true}}', // one line: kustomize writes it single-quoted
    'featureGates:\n  "nativeSidecars": true\n',
    '"featureGates":\n  nativeSidecars: true\n',
    "featureGates: {globalEnabled: true,\n  nativeSidecars: true}\n",
    'featureGates: {"nativeSidecars": true}\n',
    'featureGates:\n  nativeSidecars:\n    true\n',
    'featureGates:\n  nativeSidecars: !!bool true\n',
    'trustDomain: example.org\n"featureGates": {nativeSidecars: true}\n',
  ])
    assert.equal(run(config), 'unknown', config);
  // the forms it follows still decide
  assert.equal(run('---\nfeatureGates :\n  nativeSidecars: TRUE\n'), 'refused');
  assert.equal(run('featureGates: { nativeSidecars: true }\nauthBridge:\n  images:\n    proxySidecar: ghcr.io/x/y:v1\n'), 'refused');
  assert.equal(run('featureGates:\n  nativeSidecars: false\n  injectTools: true\n'), 'off');
  assert.equal(run('featureGates: {}\n'), 'off');
});

test('preflight: self-signed before `make certs` (it does not render) reads its config from manifests/base', () => {
  withDir((dir) => {
    const manifests = join(dir, 'manifests');
    // without the certificates `make certs` may have written, and nothing another test file left in manifests/
    copyManifests(manifests);
    const config = join(manifests, 'base', 'config.yaml');
    writeFileSync(config, readFileSync(config, 'utf8').replace(/^  nativeSidecars: false$/m, '  nativeSidecars: true'));
    const r = preflight({ major: '1', minor: '30' }, { manifests, overlay: 'self-signed', nodes: ['a v1.30.1', 'b v1.27.9'] });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^preflight: manifests\/self-signed's config sets featureGates\.nativeSidecars: true, but node b runs kubelet v1\.27\.9/);
    assert.deepEqual(r.calls.slice(1, 3), [`kustomize ${join(manifests, 'self-signed')}`, `kustomize ${join(manifests, 'base')}`]);
  });
});

test('preflight: nodes that cannot be listed are a note, not a stop (the check is advice)', () => {
  const r = preflight({ major: '1', minor: '31' }, { nodes: { error: 'Error from server (Forbidden): nodes is forbidden: User "dev" cannot list resource "nodes"' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^preflight: could not read the nodes' kubelet versions: '.*kubectl get nodes' failed \(Error from server \(Forbidden\): nodes is forbidden: .*\)\. Native sidecars .* need kubelet 1\.29 or later on every node that runs agents: check the nodes before using them\.\npreflight: Kubernetes 1\.31: ok\n$/);
});

test('preflight: KUBECTL is split into words, as make splits it ("kubectl --context prod")', () => {
  const r = preflight({ major: '1', minor: '31' }, { kubectlArgs: ' --context prod' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.calls, [
    '--context prod version -o json',
    `--context prod kustomize ${join(ROOT, 'manifests', 'default')}`,
    '--context prod get crd certificates.cert-manager.io -o name',
    `--context prod ${NODES_CALL}`,
  ]);
  const unreachable = preflight(null, { kubectlArgs: ' --context  prod' });
  assert.equal(unreachable.code, 2);
  assert.match(unreachable.stderr, /from '.*kubectl --context prod version -o json'/);
});

// ---- manifests/filter-kinds.sh

function filterKinds(args: string[], input: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', [join(ROOT, 'manifests/filter-kinds.sh'), ...args], { input, env: scriptEnv(), encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const kindsOf = (stream: string) => [...stream.matchAll(/^kind: *(\S+)$/gm)].map((m) => m[1]);

test('filter-kinds.sh keeps or drops whole documents by their top-level kind', () => {
  const rendered = execFileSync('kubectl', ['kustomize', join(ROOT, 'manifests', 'default')], { encoding: 'utf8' });
  const all = kindsOf(rendered);
  assert.ok(all.includes('Namespace') && all.includes('MutatingWebhookConfiguration'), all.join(' '));
  const webhooks = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];
  const kept = filterKinds(['keep', ...webhooks], rendered);
  assert.equal(kept.code, 0, kept.stderr);
  assert.deepEqual(kindsOf(kept.stdout), webhooks);
  const dropped = filterKinds(['drop', ...webhooks], rendered);
  assert.deepEqual(kindsOf(dropped.stdout), all.filter((k) => !webhooks.includes(k)));
  const noNamespace = filterKinds(['drop', 'Namespace'], rendered);
  assert.deepEqual(kindsOf(noNamespace.stdout), all.filter((k) => k !== 'Namespace'));
  // The two halves are the whole: every line of every document, once.
  const lines = (s: string) => s.split('\n').filter((l) => l !== '---' && l !== '').sort();
  assert.deepEqual(lines(kept.stdout + dropped.stdout), lines(rendered));
  // an indented `kind:` (a webhook rule's, an owner reference's) is not the document's kind
  const nested = 'apiVersion: v1\nkind: ConfigMap\ndata:\n  x: |\n    kind: Namespace\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n';
  assert.equal(filterKinds(['drop', 'Namespace'], nested).stdout, '---\napiVersion: v1\nkind: ConfigMap\ndata:\n  x: |\n    kind: Namespace\n');
});

test('filter-kinds.sh: a wrong mode or no kind is a usage error (exit 2)', () => {
  for (const args of [[], ['keep'], ['only', 'Namespace']]) {
    const r = filterKinds(args, '');
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^filter-kinds\.sh: usage: filter-kinds\.sh keep\|drop KIND\.\.\./);
  }
});

// ---- make deploy / make undeploy

const hasMake = spawnSync('make', ['--version']).status === 0;
const skipMake = { skip: !hasMake && 'make is not installed' };

function make(target: string, fake: Fake, ...vars: string[]): Run {
  return withDir((dir) => {
    const k = fakeKubectl(dir, fake);
    const env = scriptEnv();
    delete env.MAKEFLAGS;
    delete env.OVERLAY;
    delete env.IMG;
    delete env.VERSION;
    const r = spawnSync('make', ['-s', target, `KUBECTL=${k.kubectl}`, ...vars], { cwd: ROOT, env, encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, calls: k.calls() };
  });
}

/** The kinds of the documents each `-f -` call was given, in order. */
function stdinKinds(calls: string[]): string[][] {
  return calls.filter((c) => c.startsWith('  stdin: ')).map((c) => c.slice('  stdin: '.length).split(' ').filter((k) => k));
}

const WEBHOOK_KINDS = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

function renderedKinds(overlay: string): string[] {
  return kindsOf(execFileSync('kubectl', ['kustomize', join(ROOT, 'manifests', overlay)], { encoding: 'utf8' }));
}

const PREFLIGHT_CALLS = ['version -o json', 'kustomize manifests/default', 'get crd certificates.cert-manager.io -o name'];
/** the preflight's calls when it goes ahead: the nodes are read last */
const PREFLIGHT_OK_CALLS = [...PREFLIGHT_CALLS, NODES_CALL];
const WEBHOOKS_EXIST = [
  'get mutatingwebhookconfiguration/kagenti-webhook --ignore-not-found -o name',
  'get validatingwebhookconfiguration/kagenti-webhook --ignore-not-found -o name',
  // and the image the running Deployment names
  '-n kagenti-system get deploy/kagenti-webhook --ignore-not-found -o jsonpath={.spec.template.spec.containers[?(@.name=="webhook")].image}',
];

test('make deploy (first install): preflight, everything but the webhook configurations, the rollout, then the two configurations', skipMake, () => {
  const r = make('deploy', {});
  assert.equal(r.code, 0, r.stderr);
  const verbs = r.calls.filter((c) => !c.startsWith('  '));
  assert.deepEqual(verbs, [
    ...PREFLIGHT_OK_CALLS,
    ...WEBHOOKS_EXIST,
    'kustomize manifests/default',
    'apply -f -',
    '-n kagenti-system rollout status deploy/kagenti-webhook --timeout=180s',
    'kustomize manifests/default',
    'apply -f -',
  ]);
  const [first, second] = stdinKinds(r.calls);
  assert.deepEqual(first, renderedKinds('default').filter((k) => !WEBHOOK_KINDS.includes(k)));
  assert.ok(first!.includes('Namespace') && first!.includes('Deployment') && first!.includes('Certificate'));
  assert.deepEqual(second, WEBHOOK_KINDS);
});

test('make deploy (upgrade: both configurations exist): the configurations first, so a new caBundle is in place before new pods serve; then the rest and the rollout', skipMake, () => {
  const r = make('deploy', { webhooks: true });
  assert.equal(r.code, 0, r.stderr);
  const verbs = r.calls.filter((c) => !c.startsWith('  '));
  assert.deepEqual(verbs, [
    ...PREFLIGHT_OK_CALLS,
    ...WEBHOOKS_EXIST,
    'kustomize manifests/default',
    'apply -f -',
    'kustomize manifests/default',
    'apply -f -',
    '-n kagenti-system rollout status deploy/kagenti-webhook --timeout=180s',
  ]);
  const [first, second] = stdinKinds(r.calls);
  assert.deepEqual(first, WEBHOOK_KINDS);
  assert.deepEqual(second, renderedKinds('default').filter((k) => !WEBHOOK_KINDS.includes(k)));
  assert.match(r.stdout, /webhook configuration kagenti-webhook exists: upgrading, configurations first/);
});

test('make deploy: when the running Deployment already names the image, it warns that the code is not upgraded (a newer checkout names the same tag), and goes on', skipMake, () => {
  const dflt = 'ghcr.io/kagenti/kagenti-webhook:v' + JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const same = make('deploy', { webhooks: true, deployImage: dflt });
  assert.equal(same.code, 0, same.stderr);
  assert.match(same.stderr, new RegExp(`^make: warning: deploy/kagenti-webhook already runs ${dflt.replace(/\./g, '\\.')}, the image this deploy names, so the webhook's code is not upgraded: .* make deploy IMG=<registry>/kagenti-webhook:<new tag> .*docs/install\\.md, Upgrade\\.\\n$`));
  assert.deepEqual(stdinKinds(same.calls).length, 2, 'applied all the same (a config change or a certificate rotation)');
  // a new image: no warning; nor on a first install (no Deployment) or with another image running
  for (const [fake, vars] of [
    [{ webhooks: true, deployImage: dflt }, ['IMG=registry.example/kagenti-webhook:abc123']],
    [{ webhooks: true, deployImage: 'ghcr.io/kagenti/kagenti-webhook:v0.0.9' }, []],
    [{}, []],
  ] as const) {
    const r = make('deploy', fake, ...vars);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning/, JSON.stringify([fake, vars]));
  }
});

/** The images each `-f -` call was given, in order ('' when none). */
function stdinImages(calls: string[]): string[] {
  const out: string[] = [];
  for (const c of calls) {
    if (c.startsWith('  stdin: ')) out.push('');
    else if (c.startsWith('  images: ')) out[out.length - 1] = c.slice('  images: '.length);
  }
  return out;
}

/** An overlay of one's own on manifests/default, in dir, that sets the webhook's image with kustomize `images:`
 * (`newTag: ...` or `digest: ...`); returns OVERLAY, the path relative to manifests/. */
function imageOverlay(dir: string, image: string): string {
  const manifests = join(ROOT, 'manifests');
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  writeFileSync(
    join(mine, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${relative(mine, join(manifests, 'default'))}\nimages:\n  - name: ghcr.io/kagenti/kagenti-webhook\n    ${image}\n`,
  );
  return relative(manifests, mine);
}

test("make deploy applies the image an overlay's images: sets (as kubectl apply -k does), and warns about the same image by that one", skipMake, () => {
  const tagged = 'ghcr.io/kagenti/kagenti-webhook:sha-abc123';
  const dflt = 'ghcr.io/kagenti/kagenti-webhook:v' + JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  withDir((dir) => {
    const overlay = `OVERLAY=${imageOverlay(dir, 'newTag: sha-abc123')}`;
    // first install: the overlay's tag, not the Makefile's default v$(VERSION)
    const install = make('deploy', {}, overlay);
    assert.equal(install.code, 0, install.stderr);
    assert.deepEqual(stdinImages(install.calls), [tagged, '']);
    assert.equal(install.stderr, '');
    // the running Deployment already runs the overlay's image: the code is not upgraded
    const same = make('deploy', { webhooks: true, deployImage: tagged }, overlay);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stderr, /^make: warning: deploy\/kagenti-webhook already runs ghcr\.io\/kagenti\/kagenti-webhook:sha-abc123, the image this deploy names, /);
    assert.deepEqual(stdinImages(same.calls), ['', tagged]);
    // it runs the default image: this deploy changes it, no warning
    const other = make('deploy', { webhooks: true, deployImage: dflt }, overlay);
    assert.equal(other.code, 0, other.stderr);
    assert.equal(other.stderr, '');
    assert.deepEqual(stdinImages(other.calls), ['', tagged]);
    // IMG= on the command line wins, and says what it replaced
    const img = make('deploy', { webhooks: true, deployImage: tagged }, overlay, 'IMG=registry.example/kagenti-webhook:new');
    assert.equal(img.code, 0, img.stderr);
    assert.deepEqual(stdinImages(img.calls), ['', 'registry.example/kagenti-webhook:new']);
    assert.match(img.stderr, /^make: IMG=registry\.example\/kagenti-webhook:new replaces ghcr\.io\/kagenti\/kagenti-webhook:sha-abc123, the webhook image manifests\/\S+ sets \(kustomize images:\), with registry\.example\/kagenti-webhook:new /);
    assert.doesNotMatch(img.stderr, /warning/);
  });
});

test('make deploy: a configuration that cannot be read (not NotFound) stops before anything is applied', skipMake, () => {
  // the stand-in answers every other `get` with exit 0; make this one fail as a Forbidden would
  const r = withDir((dir) => {
    const k = fakeKubectl(dir, {});
    const script = readFileSync(k.kubectl, 'utf8').replace(
      '  *" get mutatingwebhookconfiguration/kagenti-webhook --ignore-not-found -o name "*)\n',
      '  *" get mutatingwebhookconfiguration/kagenti-webhook --ignore-not-found -o name "*)\n    echo \'Error from server (Forbidden): forbidden\' >&2; exit 1 ;;\n  *" never "*)\n',
    );
    writeFileSync(k.kubectl, script);
    const env = scriptEnv();
    delete env.MAKEFLAGS;
    delete env.OVERLAY;
    const run = spawnSync('make', ['-s', 'deploy', `KUBECTL=${k.kubectl}`], { cwd: ROOT, env, encoding: 'utf8' });
    return { code: run.status, stderr: run.stderr, calls: k.calls() };
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Forbidden/);
  assert.deepEqual(r.calls, [...PREFLIGHT_OK_CALLS, WEBHOOKS_EXIST[0]]);
});

test('make deploy and undeploy: an OVERLAY that names no directory stops them before any kubectl call, in one line', skipMake, () => {
  for (const target of ['deploy', 'undeploy']) {
    const r = make(target, {}, 'OVERLAY=self-sgned');
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(r.calls, [], target);
    assert.match(r.stderr, /^make: there is no overlay manifests\/self-sgned: OVERLAY is default, self-signed, with-network-policy or a directory of your own under manifests\/; nothing was done\nmake: \*\*\* \[Makefile:\d+: \w+\] Error 2\n$/);
  }
});

test('make deploy: a Deployment that never becomes ready leaves the webhooks unregistered', skipMake, () => {
  const r = make('deploy', { rolloutCode: 1 });
  assert.notEqual(r.code, 0);
  const kinds = stdinKinds(r.calls);
  assert.equal(kinds.length, 1, r.calls.join('\n'));
  for (const k of WEBHOOK_KINDS) assert.ok(!kinds[0]!.includes(k), `${k} applied before the rollout finished`);
  assert.equal(r.calls.at(-1), '-n kagenti-system rollout status deploy/kagenti-webhook --timeout=180s');
});

test('make deploy: without cert-manager nothing is applied', skipMake, () => {
  const r = make('deploy', { certManager: false });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /preflight: cert-manager not found/);
  assert.deepEqual(r.calls, PREFLIGHT_CALLS);
});

test('make deploy KUBECTL="kubectl --context prod" passes the context to the preflight and every call', skipMake, () => {
  const r = withDir((dir) => {
    const k = fakeKubectl(dir, {});
    const env = scriptEnv();
    delete env.MAKEFLAGS;
    const run = spawnSync('make', ['-s', 'deploy', `KUBECTL=${k.kubectl} --context prod`], { cwd: ROOT, env, encoding: 'utf8' });
    return { code: run.status, stderr: run.stderr, calls: k.calls() };
  });
  assert.equal(r.code, 0, r.stderr);
  for (const c of r.calls.filter((l) => !l.startsWith('  '))) assert.match(c, /^--context prod /);
});

const CERT_MANAGER_SECRETS = '-n kagenti-system delete secret kagenti-webhook-tls kagenti-webhook-ca --ignore-not-found';

for (const [overlay, vars, rendered, certManager] of [
  ['default', [], 'default', true],
  ['with-network-policy', ['OVERLAY=with-network-policy'], 'with-network-policy', true],
  // no certificates: the overlay cannot render; the base is what it installed but the Secret (deleted by label)
  ['self-signed without certificates', ['OVERLAY=self-signed', 'CERTS_DIR=/nonexistent/certs'], 'base', false],
] as const) {
  test(`make undeploy (${overlay}): the webhook configurations first, then everything the overlay installed but the Namespace, then ${certManager ? "cert-manager's Secrets" : 'no Secret by name'}`, skipMake, () => {
    const r = make('undeploy', {}, ...vars);
    assert.equal(r.code, 0, r.stderr);
    const verbs = r.calls.filter((c) => !c.startsWith('  '));
    assert.deepEqual(verbs, [
      // rendered first: an overlay that does not render deletes nothing
      `kustomize manifests/${rendered}`,
      'delete mutatingwebhookconfiguration/kagenti-webhook validatingwebhookconfiguration/kagenti-webhook --ignore-not-found',
      '-n kagenti-system delete configmap,secret -l app.kubernetes.io/name=kagenti-webhook --ignore-not-found',
      'delete --ignore-not-found -f -',
      // after the Certificates: deleted before them, cert-manager would issue them again
      ...(certManager ? [CERT_MANAGER_SECRETS] : []),
    ]);
    for (const c of verbs) assert.doesNotMatch(c, /\bnamespaces?\b(?!\/)/i, `never deletes the namespace: ${c}`);
    const [deleted] = stdinKinds(r.calls);
    assert.deepEqual(deleted, renderedKinds(rendered).filter((k) => k !== 'Namespace'));
    for (const k of ['Deployment', 'Service', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'PodDisruptionBudget', 'ResourceQuota', 'ConfigMap']) {
      assert.ok(deleted!.includes(k), `deletes the ${k}`);
    }
    if (overlay === 'with-network-policy') assert.ok(deleted!.includes('NetworkPolicy'));
    if (certManager) for (const k of ['Issuer', 'Certificate']) assert.ok(deleted!.includes(k), `deletes the ${k}s before their Secrets`);
  });
}

test('make undeploy (an overlay of one\'s own on self-signed, rendered): no Secret by name, which it never created', skipMake, () => {
  const r = withDir((dir) => make('undeploy', {}, `OVERLAY=${overlayOn('self-signed', dir)}`));
  assert.equal(r.code, 0, r.stderr);
  const verbs = r.calls.filter((c) => !c.startsWith('  '));
  assert.equal(verbs.length, 4, verbs.join('\n'));
  assert.match(verbs[0]!, /^kustomize manifests\/\.\..*\/mine$/);
  assert.ok(!verbs.includes(CERT_MANAGER_SECRETS));
  const [deleted] = stdinKinds(r.calls);
  assert.ok(deleted!.includes('Secret') && deleted!.includes('PodMonitor') && !deleted!.includes('Namespace'), deleted!.join(' '));
});

test('the Makefile never deletes a namespace', () => {
  const make = readFileSync(join(ROOT, 'Makefile'), 'utf8');
  assert.doesNotMatch(make, /delete (ns|namespaces?)\b/);
});

test('make undeploy: cert-manager\'s Secrets are deleted even when deleting the rendered objects fails (cert-manager uninstalled first), and the failure is the exit code', skipMake, () => {
  const r = make('undeploy', { deleteFails: true });
  assert.notEqual(r.code, 0);
  const verbs = r.calls.filter((c) => !c.startsWith('  '));
  assert.equal(verbs.at(-1), CERT_MANAGER_SECRETS);
});

test('make undeploy: an overlay that does not render deletes nothing', skipMake, () => {
  const r = make('undeploy', { kustomizeFails: true });
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(r.calls, ['kustomize manifests/default']);
  assert.match(r.stderr, /make: manifests\/default does not render \(above\); nothing was deleted/);
});

test('make deploy: one webhook configuration left (half-installed) is an upgrade: the configurations go first', skipMake, () => {
  const r = make('deploy', { webhooks: 'mutating' });
  assert.equal(r.code, 0, r.stderr);
  const kinds = stdinKinds(r.calls);
  assert.deepEqual(kinds[0], WEBHOOK_KINDS);
});

test('make deploy (upgrade): a rollout that does not finish says the new configurations are in place and how to go back', skipMake, () => {
  const r = make('deploy', { webhooks: true, rolloutCode: 1 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /make: the rollout did not finish: the new webhook configurations are in place and the old pods answer them .* kubectl -n kagenti-system rollout undo deploy\/kagenti-webhook, then apply the previous release's webhook configurations\./);
});
