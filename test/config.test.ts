import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AdmissionRequest, KubeObject } from '../webhook/admission.ts';
import { ConfigError, configFromObject, defaultConfig, loadConfig, parseConfig } from '../webhook/config.ts';
import { mutate } from '../webhook/mutate.ts';
import { ROOT, apiServerDefaults, decodePatch, kubectlPatch } from './helpers.ts';

test('examples/config.yaml documents exactly the defaults the code uses', () => {
  assert.deepEqual(loadConfig(join(ROOT, 'examples', 'config.yaml')), defaultConfig());
});

test('an empty file and a file of comments mean all defaults', () => {
  assert.deepEqual(parseConfig(''), defaultConfig());
  assert.deepEqual(parseConfig('# nothing\n'), defaultConfig());
});

test('every config config.ts returns is deep-frozen: a setting changed after injection used the config would not reach the pods (the renders are cached per config object)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-frozen-'));
  try {
    writeFileSync(join(dir, 'c.yaml'), 'authBridge: {ports: {inbound: 16000}}\n');
    for (const [what, cfg] of [
      ['defaultConfig', defaultConfig()],
      ['parseConfig', parseConfig('trustDomain: example.org\n')],
      ['parseConfig of an empty file', parseConfig('')],
      ['configFromObject', configFromObject({ featureGates: { injectTools: true } })],
      ['loadConfig', loadConfig(join(dir, 'c.yaml'))],
      ['loadConfig without a file', loadConfig(undefined)],
    ] as const) {
      assert.throws(() => {
        (cfg.authBridge.images as { proxySidecar: string }).proxySidecar = 'registry.example/other:2.0';
      }, TypeError, what);
      assert.throws(() => {
        (cfg.authBridge.ports as { inbound: number }).inbound = 17000;
      }, TypeError, what);
      assert.throws(() => (cfg.tokenReview.configMapNames as string[]).push('x'), TypeError, what);
    }
    // each call gives its own config: the defaults are not one shared object
    assert.notEqual(defaultConfig(), defaultConfig());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('partial config merges over the defaults', () => {
  const c = parseConfig('featureGates:\n  injectTools: true\nauthBridge:\n  ports:\n    extProc: 9190\n');
  assert.equal(c.featureGates.injectTools, true);
  assert.equal(c.featureGates.globalEnabled, true);
  assert.equal(c.authBridge.ports.extProc, 9190);
  assert.equal(c.authBridge.ports.admin, 9901);
});

const invalid: [string, RegExp][] = [
  ['featureGate:\n  injectTools: true\n', /featureGate: unknown key/],
  ['featureGates:\n  injectTool: true\n', /featureGates\.injectTool: unknown key \(known keys of featureGates: globalEnabled, injectTools, nativeSidecars\)/],
  ['featureGates:\n  injectTools: "true"\n', /featureGates\.injectTools: expected true or false, got string "true"/],
  ['authBridge:\n  defaultMode: sidecar\n', /authBridge\.defaultMode: expected one of proxy-sidecar, lite, envoy-sidecar, waypoint, got string "sidecar"\. Fix: write one of proxy-sidecar, lite, envoy-sidecar, waypoint\.$/],
  ['authBridge:\n  ports:\n    admin: 70000\n', /authBridge\.ports\.admin: expected a port number/],
  ['authBridge:\n  ports:\n    admin: 15123\n', /outbound and admin both use port 15123/],
  ['policies:\n  unique-service-account: block\n', /^my\.yaml: policies\.unique-service-account: "block" is not allowed: a policy is deny \(reject what breaks unique-service-account\), warn \(admit it with a warning\) or off \(no check\)\. Fix: write deny, warn or off\.$/],
  // a rule that only warns: says so, and how to silence it
  ['policies:\n  net-admin: deny\n', /^my\.yaml: policies\.net-admin: "deny" is not allowed: net-admin only warns \(warn or off\)\. Fix: write warn, or off to silence it\.$/],
  ['policies:\n  net-admin: true\n', /^my\.yaml: policies\.net-admin: boolean true is not allowed: net-admin only warns/],
  ['tokenReview:\n  issuer: somewhere\n', /tokenReview\.issuer: expected auto, external, internal or an issuer URL/],
  ['tokenReview:\n  configMapNames: []\n', /tokenReview\.configMapNames: expected a non-empty list/],
  // names no ConfigMap can have would match nothing, and the webhook would fail open
  ['tokenReview:\n  configMapNames: [" kagent-enterprise-config"]\n', /tokenReview\.configMapNames\[0\]: expected a ConfigMap name \(at most 253 lowercase letters, digits, '-' and '\.', beginning and ending with a letter or digit\), got string " kagent-enterprise-config"$/],
  ['tokenReview:\n  configMapNames: [kagent-enterprise-config, Kagent-Enterprise-Config]\n', /tokenReview\.configMapNames\[1\]: expected a ConfigMap name .*got string "Kagent-Enterprise-Config"$/],
  ['tokenReview:\n  configMapNames: [kagent-config-]\n', /tokenReview\.configMapNames\[0\]: expected a ConfigMap name/],
  [`tokenReview:\n  configMapNames: [${'a'.repeat(254)}]\n`, /tokenReview\.configMapNames\[0\]: expected a ConfigMap name .*got string "a{40}\.\.\." \(254 characters\)$/],
  // the message says https://, and an issuer is https
  ['tokenReview:\n  issuer: http://kubernetes.default.svc\n', /tokenReview\.issuer: expected auto, external, internal or an issuer URL \(https:\/\/\.\.\.\), got string "http:\/\/kubernetes\.default\.svc"$/],
  // setInterval takes at most 2^31-1 ms and runs anything longer every 1 ms: a year would be ~875 discovery GETs a second
  ['tokenReview:\n  recheckSeconds: 31536000\n', /tokenReview\.recheckSeconds: expected a whole number of seconds from 1 to 2147483 \(about 24\.8 days, the longest interval a Node\.js timer can wait\), got number 31536000$/],
  ['tokenReview:\n  recheckSeconds: 2147484\n', /tokenReview\.recheckSeconds: expected a whole number of seconds from 1 to 2147483 /],
  ['tokenReview:\n  recheckSeconds: 1e300\n', /tokenReview\.recheckSeconds: expected a whole number of seconds from 1 to 2147483 /],
  ['tokenReview:\n  recheckSeconds: 0\n', /tokenReview\.recheckSeconds: expected a whole number of seconds from 1 to 2147483 .*got number 0$/],
  ['- a\n- b\n', /config: expected a mapping, got a list/],
  ['a: [\n', /not valid YAML/],
  ['spiffeHelper:\n  resources:\n    limits:\n      memory: lots\n', /spiffeHelper\.resources\.limits\.memory: expected a Kubernetes quantity such as 100m, 0\.5, 64Mi or 1e3, got string "lots" \(a quantity is a number, optionally signed, then nothing or one of the suffixes/],
  ['authBridge:\n  resources:\n    limits:\n      memory: 64MB\n', /authBridge\.resources\.limits\.memory: expected a Kubernetes quantity .*got string "64MB"/],
  ['authBridge:\n  resources:\n    limits:\n      cpu: [1]\n', /authBridge\.resources\.limits\.cpu: expected a Kubernetes quantity .*got a list/],
  // YAML numbers: non-finite, too large, negative, more digits than a float keeps.
  ['authBridge:\n  resources:\n    requests:\n      cpu: .inf\n', /authBridge\.resources\.requests\.cpu: expected a Kubernetes quantity .*got \.inf \(YAML's infinity\), which is not a quantity/],
  ['authBridge:\n  resources:\n    requests:\n      cpu: -.inf\n', /authBridge\.resources\.requests\.cpu: .*got -\.inf/],
  ['authBridge:\n  resources:\n    requests:\n      cpu: .nan\n', /authBridge\.resources\.requests\.cpu: .*got \.nan \(YAML's not-a-number\)/],
  ['authBridge:\n  resources:\n    requests:\n      cpu: 1e21\n', /authBridge\.resources\.requests\.cpu: 1e\+21 is more than 2\^63-1 .*the largest quantity Kubernetes stores; use a realistic value such as 500m/],
  ['authBridge:\n  resources:\n    limits:\n      memory: "1000E"\n', /authBridge\.resources\.limits\.memory: 1000E is more than 2\^63-1 .*such as 256Mi/],
  // a binary-SI value past it is refused too (the parse caps it, as apimachinery does)
  ['authBridge:\n  resources:\n    limits:\n      memory: 100Ei\n', /authBridge\.resources\.limits\.memory: 100Ei is more than 2\^63-1 .*such as 256Mi/],
  ['authBridge:\n  resources:\n    requests:\n      cpu: -1\n', /authBridge\.resources\.requests\.cpu: -1 is negative; the API server rejects negative resource requests and limits/],
  ['spiffeHelper:\n  resources:\n    limits:\n      memory: "-64Mi"\n', /spiffeHelper\.resources\.limits\.memory: -64Mi is negative/],
  ['authBridge:\n  resources:\n    limits:\n      memory: 123456789012345678\n', /authBridge\.resources\.limits\.memory: YAML reads 123456789012345680 as a floating-point number, which may have rounded what you wrote; quote it/],
  // Settings that each pass but would make every injected pod invalid.
  ['spire:\n  socketDir: /opt\n', /spire\.socketDir: \/opt is already the SVID directory/],
  ['spire:\n  socketDir: /etc/spiffe-helper/\n', /spire\.socketDir: \/etc\/spiffe-helper is already spiffe-helper's config directory/],
  ['spire:\n  socketDir: relative/dir\n', /spire\.socketDir: expected an absolute directory path/],
  ['spire:\n  socketDir: /\n', /spire\.socketDir: expected an absolute directory path/],
  ['spire:\n  socketDir: \'/run/"x"\'\n', /spire\.socketDir: expected an absolute directory path/],
  ['spire:\n  socketName: a/b.sock\n', /spire\.socketName: expected a file name/],
  ['trustDomain: Example.ORG\n', /trustDomain: string "Example.ORG" is not a SPIFFE trust domain name/],
  ['authBridge:\n  resources:\n    limits:\n      memory: 32Mi\n', /authBridge\.resources: requests\.memory \(64Mi\) is more than limits\.memory \(32Mi\)/],
  ['spiffeHelper:\n  resources:\n    requests:\n      cpu: "1"\n', /spiffeHelper\.resources: requests\.cpu \(1\) is more than limits\.cpu \(100m\)/],
  ['spiffeHelper:\n  resources:\n    requests:\n      cpu: 100000001n\n', /spiffeHelper\.resources: requests\.cpu \(100000001n\) is more than limits\.cpu \(100m\)/],  // memory in millibytes (the typo for Mi) or below 1Mi: the kubelet gives the container a limit nothing runs in
  ['authBridge:\n  resources:\n    limits: {cpu: 500m, memory: 256m}\n', /^my\.yaml: authBridge\.resources\.limits\.memory: 256m is not a whole number of bytes \(the suffix m is milli, a thousandth; mebibytes is Mi\); the kubelet would give the injected containers a memory limit of 1 byte, in which nothing runs, so every agent pod would stick in Init\. Fix: write 256Mi$/],
  ['authBridge:\n  resources:\n    requests: {memory: 64m}\n', /^my\.yaml: authBridge\.resources\.requests\.memory: 64m is not a whole number of bytes .*the injected containers would request 1 byte of memory, .*Fix: write 64Mi$/],
  ['spiffeHelper:\n  resources:\n    requests: {memory: 0.5}\n', /spiffeHelper\.resources\.requests\.memory: 0\.5 is not a whole number of bytes; .*Fix: write the amount with a binary suffix, such as 16Mi$/],
  ['spiffeHelper:\n  resources:\n    limits: {cpu: 100m, memory: 1}\n    requests: {cpu: 10m, memory: 1}\n', /^my\.yaml: spiffeHelper\.resources\.limits\.memory: 1 is 1 byte, less than 1Mi \(a number without a suffix is bytes\); the kubelet would give the injected containers a memory limit of 1 byte, .*Fix: write the amount with a binary suffix, such as 64Mi$/],
  ['spiffeHelper:\n  resources:\n    requests: {memory: 1023Ki}\n', /spiffeHelper\.resources\.requests\.memory: 1023Ki is 1047552 bytes, less than 1Mi; /],
  ['authBridge:\n  resources:\n    limits: {memory: 512}\n', /authBridge\.resources\.limits\.memory: 512 is 512 bytes, less than 1Mi .*Fix: write 512Mi$/],
  // images the kubelet cannot parse (InvalidImageName) or the API server refuses (white space around them)
  ['authBridge:\n  images:\n    proxySidecar: >\n      registry.example.com/kagenti/authbridge-proxy:v0.4.0\n', /^my\.yaml: authBridge\.images\.proxySidecar: "registry\.example\.com\/kagenti\/authbridge-proxy:v0\.4\.0\\n" is not an image reference: it ends with a line break \(a folded ">" or literal "\|" YAML block keeps one: .*\); every injected pod would fail \(InvalidImageName, or refused by the API server\)\. Fix: write registry\.example\.com\/kagenti\/authbridge-proxy:v0\.4\.0$/],
  ['authBridge:\n  images:\n    proxySidecar: ghcr.io/MyOrg/authbridge-proxy:v0.4.0\n', /^my\.yaml: authBridge\.images\.proxySidecar: "ghcr\.io\/MyOrg\/authbridge-proxy:v0\.4\.0" is not an image reference: it has capital letters in its repository path .*Fix: write ghcr\.io\/myorg\/authbridge-proxy:v0\.4\.0$/],
  ['authBridge:\n  images:\n    lite: "foo bar:1"\n', /^my\.yaml: authBridge\.images\.lite: "foo bar:1" is not an image reference: it contains white space; .*Fix: write an image reference such as ghcr\.io\/kagenti\/kagenti-extensions\/authbridge-lite:v0\.4\.0$/],
  ['authBridge:\n  images:\n    envoy: "ghcr.io/kagenti/envoy@sha256:abc"\n', /authBridge\.images\.envoy: .* it does not follow the image reference grammar: /],
  ['authBridge:\n  images:\n    proxyInit: "ghcr.io/kagenti/proxy-init:"\n', /authBridge\.images\.proxyInit: .* it does not follow the image reference grammar: /],
  ['spiffeHelper:\n  image: " ghcr.io/spiffe/spiffe-helper:0.10.0"\n', /spiffeHelper\.image: " ghcr\.io\/spiffe\/spiffe-helper:0\.10\.0" is not an image reference: it has white space before or after it; .*Fix: write ghcr\.io\/spiffe\/spiffe-helper:0\.10\.0$/],
  // names no object can have: nothing matches them, or the API server refuses every injected pod
  ['tokenReview:\n  controllerDeployment: deploy/kagent-controller\n', /^my\.yaml: tokenReview\.controllerDeployment: expected a Deployment name \(at most 253 lowercase letters, digits, '-' and '\.', beginning and ending with a letter or digit\), got string "deploy\/kagent-controller"; it would match no Deployment, so lint's controller check, the background audit and the \[kagent-restart\] reminder would all miss kagent's controller\. Fix: the name alone, without kubectl's deploy\/ prefix: kagent-controller$/],
  ['tokenReview:\n  controllerDeployment: kagent/kagent-controller\n', /tokenReview\.controllerDeployment: .*got string "kagent\/kagent-controller"; .*Fix: the name alone, without "kagent\/" \(a namespace or kind is not part of the name\): kagent-controller$/],
  ['tokenReview:\n  controllerDeployment: Kagent Controller\n', /tokenReview\.controllerDeployment: .*Fix: the name of kagent's controller Deployment alone, such as kagent-controller$/],
  ['spire:\n  csiDriver: "csi spiffe io"\n', /^my\.yaml: spire\.csiDriver: expected a CSI driver name \(at most 63 letters, digits, '-' and '\.', beginning and ending with a letter or digit\), got string "csi spiffe io"; the API server would reject every injected pod \(its CSI volume names the driver\)\. Fix: .*such as csi\.spiffe\.io$/],
  [`spire:\n  csiDriver: ${'a'.repeat(64)}\n`, /spire\.csiDriver: expected a CSI driver name \(at most 63 /],
  ['spiffeHelper:\n  configMap: My_Helper\n', /^my\.yaml: spiffeHelper\.configMap: expected a ConfigMap name \(at most 253 lowercase letters, .*got string "My_Helper"; no ConfigMap can have it, so every injected pod would wait in ContainerCreating \(FailedMount\)\. Fix: /],
  // a section whose entries are all commented out
  ['policies:\n  # pod-resources: warn\n', /^my\.yaml: policies: expected a mapping, got null \(a key with nothing under it: remove it, or write \{\}\)$/],
  ['authBridge:\n  resources:\n    limits:\n', /authBridge\.resources\.limits: expected a mapping, got null \(a key with nothing under it: remove it, or write \{\}\)$/],
];
for (const [text, pattern] of invalid) {
  test(`invalid config is one clear line: ${pattern.source.slice(0, 50)}`, () => {
    assert.throws(
      () => parseConfig(text, 'my.yaml'),
      (err: unknown) => err instanceof ConfigError && pattern.test(err.message) && !err.message.includes('\n') && err.message.startsWith('my.yaml: '),
    );
  });
}

test('tokenReview.configMapNames: any name a ConfigMap can have is accepted (dots, digits, 253 characters)', () => {
  const names = ['kagent-enterprise-config', 'a', '0', 'kagent.config-2', 'a'.repeat(253)];
  assert.deepEqual(configFromObject({ tokenReview: { configMapNames: names } }).tokenReview.configMapNames, names);
});

test('serve and lint stop with one line and exit 2 on a configMapNames entry no ConfigMap can have, or an http:// issuer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-cfg-'));
  try {
    for (const [text, expect] of [
      ['tokenReview:\n  configMapNames: [" kagent-enterprise-config"]\n', 'tokenReview.configMapNames[0]: expected a ConfigMap name'],
      ['tokenReview:\n  issuer: http://kubernetes.default.svc\n', 'tokenReview.issuer: expected auto, external, internal or an issuer URL (https://...), got string "http://kubernetes.default.svc"'],
    ]) {
      writeFileSync(join(dir, 'c.yaml'), text);
      for (const cmd of [['lint', '--config', join(dir, 'c.yaml'), join(dir, 'c.yaml')], ['serve', '--config', join(dir, 'c.yaml'), '--cluster', 'none', '--tls-cert', join(dir, 'no.crt'), '--tls-key', join(dir, 'no.key')]]) {
        const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), ...cmd], { encoding: 'utf8', timeout: 30_000 });
        assert.equal(r.status, 2, `${cmd[0]}: ${r.stderr}`);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.ok(r.stderr.includes(expect), r.stderr);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('images, names and memory quantities that Kubernetes takes are accepted', () => {
  const images = [
    'nginx',
    'localhost:5000/team/proxy:v1',
    'Registry.Example.com:443/a/b_c__d--e.f:1.0_rc-1',
    '[::1]:5000/x',
    `ghcr.io/kagenti/proxy:v1@sha256:${'0123456789abcdef'.repeat(4)}`,
    `ghcr.io/kagenti/proxy@sha256:${'f'.repeat(64)}`,
    `ghcr.io/kagenti/proxy@sha512:${'a'.repeat(128)}`,
  ];
  for (const image of images) assert.equal(configFromObject({ spiffeHelper: { image } }).spiffeHelper.image, image);
  const c = configFromObject({
    spire: { csiDriver: 'CSI.Spiffe.io' }, // the API server checks a CSI driver name in lowercase
    spiffeHelper: { configMap: 'helper.conf-2', resources: { requests: { memory: '1Mi' }, limits: { memory: 1048576 } } },
    tokenReview: { controllerDeployment: 'prod-kagent-controller' },
    authBridge: { resources: { requests: { memory: '0' }, limits: { memory: '1048576000m' } } },
  });
  assert.deepEqual(
    [c.spire.csiDriver, c.spiffeHelper.configMap, c.tokenReview.controllerDeployment, c.spiffeHelper.resources.requests.memory, c.authBridge.resources.limits.memory],
    ['CSI.Spiffe.io', 'helper.conf-2', 'prod-kagent-controller', '1Mi', '1048576'],
  );
  assert.equal(configFromObject({ spiffeHelper: { configMap: null } }).spiffeHelper.configMap, null);
  // a fraction of a byte on an amount that runs is rounded up to the whole bytes the kubelet gives (the API server
  // warns about fractional bytes on every pod); below 1Mi it is refused
  const rounded = (memory: string) => configFromObject({ authBridge: { resources: { requests: { memory: '16Mi' }, limits: { memory } } } }).authBridge.resources.limits.memory;
  assert.equal(rounded('0.1Gi'), '107374183');
  assert.equal(rounded('1.1Gi'), '1181116007');
  assert.equal(rounded('100.5Mi'), '102912Ki');
  assert.throws(() => rounded('0.5m'), /0\.5m is not a whole number of bytes/);
});

test('image references as the kubelet normalises them: a name counted with docker.io/ (and library/), a bare image ID refused, and an organisation in capitals lowered whole, not read as a registry host', async () => {
  const { imageReferenceProblem } = await import('../webhook/image-ref.ts');
  assert.match(imageReferenceProblem(`${'a'.repeat(240)}:1`)!.reason, /longer than 255 characters \(counting the docker\.io\//);
  assert.match(imageReferenceProblem(`a/${'b'.repeat(250)}`)!.reason, /longer than 255/);
  assert.equal(imageReferenceProblem(`a/${'b'.repeat(240)}`), undefined);
  assert.equal(imageReferenceProblem(`registry.example.com/${'b'.repeat(230)}`), undefined);
  assert.match(imageReferenceProblem('f'.repeat(64))!.reason, /image ID/);
  assert.deepEqual(imageReferenceProblem('MyOrg/Image:v1')!.corrected, 'myorg/image:v1');
  assert.deepEqual(imageReferenceProblem('ghcr.io/MyOrg/x:v1')!.corrected, 'ghcr.io/myorg/x:v1');
});

test('serve, inject and lint stop with one line and exit 2 on a memory typo, an image the kubelet cannot parse, or a deploy/ controller name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-cfg-'));
  try {
    for (const [text, expect] of [
      ['authBridge:\n  resources:\n    limits: {memory: 256m}\n', 'authBridge.resources.limits.memory: 256m is not a whole number of bytes'],
      ['authBridge:\n  images:\n    proxySidecar: >\n      registry.example.com/kagenti/authbridge-proxy:v0.4.0\n', 'authBridge.images.proxySidecar: "registry.example.com/kagenti/authbridge-proxy:v0.4.0\\n" is not an image reference'],
      ['tokenReview:\n  controllerDeployment: deploy/kagent-controller\n', 'Fix: the name alone, without kubectl\'s deploy/ prefix: kagent-controller'],
    ]) {
      writeFileSync(join(dir, 'c.yaml'), text);
      const config = join(dir, 'c.yaml');
      for (const cmd of [
        ['lint', '--config', config, join(ROOT, 'examples', 'agent-pod.yaml')],
        ['inject', '--config', config, '-f', join(ROOT, 'examples', 'agent-pod.yaml')],
        ['serve', '--config', config, '--cluster', 'none', '--tls-cert', join(dir, 'no.crt'), '--tls-key', join(dir, 'no.key')],
      ]) {
        const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'kagenti-webhook.js'), ...cmd], { encoding: 'utf8', timeout: 30_000 });
        assert.equal(r.status, 2, `${cmd[0]}: ${r.stderr}`);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.ok(r.stderr.includes(expect), r.stderr);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenReview.recheckSeconds: the longest a timer can wait is accepted', () => {
  assert.equal(parseConfig('tokenReview:\n  recheckSeconds: 2147483\n').tokenReview.recheckSeconds, 2147483);
  assert.equal(parseConfig('tokenReview:\n  recheckSeconds: 1\n').tokenReview.recheckSeconds, 1);
});

test('settings close to the limits are accepted: a socket dir beside ours, requests equal to limits', () => {
  const c = parseConfig('spire:\n  socketDir: /opt/spire/\nauthBridge:\n  resources:\n    requests:\n      memory: 0.25Gi\n    limits:\n      memory: 256Mi\n');
  assert.equal(c.spire.socketDir, '/opt/spire/');
  assert.equal(c.authBridge.resources.requests.memory, '256Mi');
});

test('resource quantities: every form of Kubernetes quantity grammar is accepted, and stored in canonical form', () => {
  const cases: [string, string][] = [
    ['"1e3"', '1e3'],
    ['1e3', '1k'], // unquoted, a YAML number: 1000, as kubectl reads it too
    ['.5', '500m'],
    ['1.5e+3', '1500'],
    ['+1', '1'],
    ['"0.05"', '50m'],
    ['0.05', '50m'], // a YAML number
    ['0.0000001', '100e-9'], // a YAML number, read as 1e-7 (an exponent), as kubectl reads it too
    ['2', '2'],
    ['2000m', '2'],
    ['"0.0000000001"', '1n'], // below nano: rounded up, as the API server does
    ['1e-10', '1e-9'],
    ['0', '0'],
  ];
  for (const [written, stored] of cases) {
    const c = parseConfig(`authBridge:\n  resources:\n    requests:\n      cpu: ${written}\n    limits:\n      cpu: 1e4\n`);
    assert.equal(c.authBridge.resources.requests.cpu, stored, written);
  }
  const c = parseConfig(
    'authBridge:\n  resources:\n    requests: { memory: 1024Mi }\n    limits: { cpu: 1000, memory: 1.5Gi }\nspiffeHelper:\n  resources:\n    requests: { memory: 0.5Gi }\n    limits: { memory: 1Gi }\n',
  );
  assert.deepEqual(c.authBridge.resources, { requests: { cpu: '50m', memory: '1Gi' }, limits: { cpu: '1k', memory: '1536Mi' } });
  assert.deepEqual(c.spiffeHelper.resources, { requests: { cpu: '10m', memory: '512Mi' }, limits: { cpu: '100m', memory: '1Gi' } });  // 16 digits or more as a YAML number: the number cannot tell whether YAML rounded the text (1234567890123456.1
  // arrives as 1234567890123456), so it is refused with the fix; quoted, it is read exactly
  for (const n of ['1234567890123456.1', '1000000000000001'])
    assert.throws(() => parseConfig(`spiffeHelper:\n  resources:\n    limits: { memory: ${n} }\n`), /may have rounded what you wrote; quote it/);
  const quoted = parseConfig('spiffeHelper:\n  resources:\n    requests: { memory: "1000000000000001" }\n    limits: { memory: "2000000000000000" }\n');
  assert.equal(quoted.spiffeHelper.resources.requests.memory, '1000000000000001');
});

test('requests at most limits is checked on exact values, whatever the suffixes', () => {
  // equal values in different spellings are accepted
  parseConfig('authBridge:\n  resources:\n    requests: { cpu: 1000m, memory: 0.25Gi }\n    limits: { cpu: "1", memory: 262144Ki }\n');
  parseConfig('authBridge:\n  resources:\n    requests: { cpu: 0.5 }\n    limits: { cpu: 500000u }\n');
  assert.throws(
    () => parseConfig('authBridge:\n  resources:\n    requests: { memory: 268435457 }\n    limits: { memory: 256Mi }\n'),
    /authBridge\.resources: requests\.memory \(268435457\) is more than limits\.memory \(256Mi\)/,
  );
});

/**
 * The pod as the API server hands it back after storing it: every resource quantity decoded and encoded again by
 * apimachinery (here the real one, in `kubectl set resources --local`, which round-trips the whole typed Pod;
 * the probe container it needs is taken out again).
 */
function apiServerQuantities(pod: KubeObject): KubeObject {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-quantities-'));
  try {
    const probe = { ...pod, spec: { ...pod.spec, containers: [...pod.spec.containers, { name: 'quantity-probe', image: 'probe' }] } };
    writeFileSync(join(dir, 'pod.json'), JSON.stringify(probe));
    const out = JSON.parse(
      execFileSync('kubectl', ['set', 'resources', '--local', '-f', join(dir, 'pod.json'), '-c', 'quantity-probe', '--limits=cpu=1', '-o', 'json'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const result = structuredClone(pod);
    for (const list of ['containers', 'initContainers'])
      (result.spec[list] ?? []).forEach((c: KubeObject, i: number) => {
        if (c.resources) c.resources = out.spec[list][i].resources;
      });
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function podRequest(pod: KubeObject): AdmissionRequest {
  return { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'team-a', operation: 'CREATE', userInfo: { username: 'me' }, object: pod };
}

test('a config with non-canonical quantities: re-invocation on the pod the API server hands back returns no patch', () => {
  // Each quantity here is one the API server rewrites ("0.05" -> "50m", "1024Mi" -> "1Gi", ...).
  const yaml = [
    'authBridge:',
    '  resources:',
    '    requests: { cpu: "0.05", memory: 0.0625Gi }',
    '    limits: { cpu: 1.5, memory: 1024Mi }',
    'spiffeHelper:',
    '  resources:',
    '    requests: { cpu: 0.01, memory: 16384Ki }',
    '    limits: { cpu: 2000m, memory: 1e8 }',
  ].join('\n');
  const pod: KubeObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'agent', namespace: 'team-a', labels: { 'kagenti.io/type': 'agent' } },
    spec: { serviceAccountName: 'agent', containers: [{ name: 'app', image: 'app:1', resources: { requests: { cpu: '0.25' } } }] },
  };
  for (const native of [false, true]) {
    const config = parseConfig(`${yaml}\nfeatureGates:\n  nativeSidecars: ${native}\n`);
    const first = mutate(podRequest(pod), { config });
    assert.equal(first.response.allowed, true);
    const patch = decodePatch(first.response);
    assert.ok(patch.length > 0, 'the pod is injected');
    const stored = apiServerQuantities(apiServerDefaults(kubectlPatch(pod, patch)));
    const sidecars = [...stored.spec.containers, ...(stored.spec.initContainers ?? [])].filter((c: KubeObject) => c.name !== 'app');
    assert.ok(sidecars.some((c: KubeObject) => c.resources?.limits?.memory === '1Gi'), 'the API server wrote 1024Mi as 1Gi');
    const again = mutate(podRequest(stored), { config });
    assert.equal(again.response.allowed, true);
    assert.deepEqual(decodePatch(again.response), [], `nativeSidecars ${native}: a re-invocation must return no patch`);
  }
});

test('prototype-pollution keys in config are unknown keys, not merged', () => {
  assert.throws(() => parseConfig('{"__proto__": {"polluted": true}}'), ConfigError);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('config errors quote at most 40 characters of a value or key, and never the text of a key or certificate file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kw-cfg-'));
  try {
    // a mix-up of --config and --tls-key: the message says what the file is, and nothing of the key
    const body = 'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRETSECRETSECRET';
    writeFileSync(join(dir, 'tls.key'), `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`);
    assert.throws(() => loadConfig(join(dir, 'tls.key')), (err: Error) => {
      assert.match(err.message, /config: expected a mapping, got a PEM block \(a key or certificate file, not a config file\)$/);
      assert.ok(!err.message.includes('SECRET') && !err.message.includes('MIG'), err.message);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const long = 'x'.repeat(3000);
  assert.throws(() => parseConfig(`authBridge:\n  defaultMode: ${long}\n`), {
    message: `config: authBridge.defaultMode: expected one of proxy-sidecar, lite, envoy-sidecar, waypoint, got string "${'x'.repeat(40)}..." (3000 characters). Fix: write one of proxy-sidecar, lite, envoy-sidecar, waypoint.`,
  });
  assert.throws(() => parseConfig(`authBridge: {"${long}": 1}\n`), (err: Error) => err.message.startsWith(`config: authBridge.${'x'.repeat(40)}... (3000 characters): unknown key`) && err.message.length < 400);
  // short values are quoted whole, as before
  assert.throws(() => parseConfig('authBridge:\n  defaultMode: turbo\n'), { message: /got string "turbo"\. Fix: / });
});

test('a missing config file names the file', () => {
  assert.throws(() => loadConfig('/nonexistent/config.yaml'), /cannot read config file \/nonexistent\/config.yaml: no such file/);
});

test('package.json engines and version agree with the code', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const { VERSION } = await import('../webhook/version.ts');
  assert.equal(pkg.version, VERSION);
  assert.equal(pkg.engines.node, '>=22.19.0');
  assert.match(pkg.devDependencies.node, /^\^?24\./);
  // the launcher's own check says the same
  assert.match(readFileSync(join(ROOT, 'bin', 'kagenti-webhook.js'), 'utf8'), /const MIN_NODE = \[22, 19\];/);
});

test('on a Node.js older than engines, the CLI says so in one line (exit 2) instead of failing somewhere inside', (t) => {
  // the machine's system node (20 here) when there is one; skipped where no older node is installed
  const old = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
    try {
      const [major, minor] = execFileSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim().split('.').map(Number);
      return major! < 22 || (major === 22 && minor! < 19);
    } catch {
      return false;
    }
  });
  if (!old) return t.skip('no Node.js older than 22.19 on this machine');
  const r = spawnSync(old, [join(ROOT, 'bin', 'kagenti-webhook.js'), 'serve', '--dev-certs', '/nonexistent/x'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^kagenti-webhook: needs Node\.js 22\.19 or later \(24 LTS recommended\); this is Node\.js \d+\.\d+\.\d+\. Fix: .*\n$/);
  assert.equal(r.stderr.split('\n').length, 2, 'one line');
});
