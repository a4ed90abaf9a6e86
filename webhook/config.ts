// Configuration: the YAML file shared by `serve`, `inject` and `lint`.
// Every key is optional; unknown keys, wrong types and bad enum values are errors that name the key.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { imageReferenceProblem } from './image-ref.ts';
import { cutKey, deepFreeze, isObject, printable, quoted } from './json.ts';
import { MAX_QUANTITY, type Quantity, QuantityError, canonicalQuantity, compareQuantities, exceedsMaxQuantity, parseQuantity } from './quantity.ts';

export const AUTHBRIDGE_MODES = ['proxy-sidecar', 'lite', 'envoy-sidecar', 'waypoint'] as const;
export type AuthBridgeMode = (typeof AUTHBRIDGE_MODES)[number];
export const MTLS_MODES = ['disabled', 'permissive', 'strict'] as const;
export type MtlsMode = (typeof MTLS_MODES)[number];
export const EGRESS_MODES = ['enforce-redirect', 'none'] as const;
export type EgressEnforcement = (typeof EGRESS_MODES)[number];
export const POLICY_ACTIONS = ['deny', 'warn', 'off'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];
export const VALIDATION_RULES = [
  'dedicated-service-account',
  'unique-service-account',
  'token-review-value',
  'token-review-required',
] as const;
export type ValidationRule = (typeof VALIDATION_RULES)[number];
/**
 * Stable names of the injection's warnings (each warning begins with `[name] `); `policies.<name>: off` silences one
 * everywhere (admission responses, `inject`, `lint`), `warn` is the default. Defined here, not in inject.ts, because
 * the config schema lists them.
 */
export const INJECTION_WARNINGS = [
  'namespace-mode-label',
  'waypoint-mode',
  'all-opted-out',
  'sidecars-block-completion',
  'pod-security',
  'init-before-proxy',
  'proxy-uid',
  'probe-through-proxy',
  'net-admin',
  'csi-driver-missing',
  'mesh-sidecar',
  'stale-injection',
] as const;
export type InjectionWarning = (typeof INJECTION_WARNINGS)[number];
export const WARNING_ACTIONS = ['warn', 'off'] as const;
/**
 * Injection denials whose action the config sets (`policies.<name>: deny | warn | off`; defaultConfig has the defaults):
 * those that depend on something the webhook cannot see. `pod-resources` (default deny) mirrors what the API server
 * rejects with the PodLevelResources feature gate on; where it is off (the default in 1.32 and 1.33) the API server
 * drops spec.resources instead, and `warn` lets such pods through with the message. `istio-sidecar` (default warn):
 * an agent that also carries Istio's sidecar runs, but outside the mesh's mTLS; a cluster that wants such pods
 * refused sets it to deny. The other injection denials have no action: the API server (or the pod itself) fails
 * them everywhere.
 */
export const INJECTION_POLICIES = ['pod-resources', 'istio-sidecar'] as const;
export type InjectionPolicy = (typeof INJECTION_POLICIES)[number];

export interface ResourceList {
  cpu?: string;
  memory?: string;
}
export interface Resources {
  requests: ResourceList;
  limits: ResourceList;
}

export interface Config {
  trustDomain: string;
  featureGates: { globalEnabled: boolean; injectTools: boolean; nativeSidecars: boolean };
  authBridge: {
    defaultMode: AuthBridgeMode;
    mtlsMode: MtlsMode;
    egressEnforcement: EgressEnforcement;
    ports: { outbound: number; inbound: number; admin: number; extProc: number };
    images: { proxySidecar: string; lite: string; envoy: string; proxyInit: string };
    resources: Resources;
  };
  spiffeHelper: { image: string; configMap: string | null; resources: Resources };
  spire: { csiDriver: string; socketDir: string; socketName: string };
  tokenReview: {
    configMapNames: string[];
    controllerDeployment: string;
    /** `auto`, `external`, `internal`, or an issuer URL. */
    issuer: string;
    tokenPath: string;
    action: 'deny' | 'mutate';
    recheckSeconds: number;
  };
  policies: Record<ValidationRule | InjectionPolicy, PolicyAction> & Partial<Record<InjectionWarning, (typeof WARNING_ACTIONS)[number]>>;
}

export const IMAGE_TAG = 'v0.4.0';

/** Where spiffe-helper writes the SVIDs, in its container and in the AuthBridge one. */
export const SVID_DIR = '/opt';
/** Where spiffe-helper reads its config file. */
export const HELPER_CONFIG_DIR = '/etc/spiffe-helper';

/**
 * The default config. Every config this module returns (defaultConfig, configFromObject, parseConfig, loadConfig)
 * is deep-frozen: the injection core caches what it renders per config object (inject.ts renderedByConfig), so a
 * config changed after use would go on giving what the old one rendered. To change a setting, build a new config.
 */
export function defaultConfig(): Config {
  return deepFreeze(defaults());
}

function defaults(): Config {
  return {
    trustDomain: 'cluster.local',
    featureGates: { globalEnabled: true, injectTools: false, nativeSidecars: false },
    authBridge: {
      defaultMode: 'proxy-sidecar',
      mtlsMode: 'permissive',
      egressEnforcement: 'enforce-redirect',
      ports: { outbound: 15123, inbound: 15124, admin: 9901, extProc: 9090 },
      images: {
        proxySidecar: `ghcr.io/kagenti/kagenti-extensions/authbridge-proxy:${IMAGE_TAG}`,
        lite: `ghcr.io/kagenti/kagenti-extensions/authbridge-lite:${IMAGE_TAG}`,
        envoy: `ghcr.io/kagenti/kagenti-extensions/envoy-with-processor:${IMAGE_TAG}`,
        proxyInit: `ghcr.io/kagenti/kagenti-extensions/proxy-init:${IMAGE_TAG}`,
      },
      resources: {
        requests: { cpu: '50m', memory: '64Mi' },
        limits: { cpu: '500m', memory: '256Mi' },
      },
    },
    spiffeHelper: {
      image: 'ghcr.io/spiffe/spiffe-helper:0.10.0',
      configMap: null,
      resources: {
        requests: { cpu: '10m', memory: '16Mi' },
        limits: { cpu: '100m', memory: '64Mi' },
      },
    },
    spire: { csiDriver: 'csi.spiffe.io', socketDir: '/spiffe-workload-api', socketName: 'spire-agent.sock' },
    tokenReview: {
      configMapNames: ['kagent-enterprise-config'],
      controllerDeployment: 'kagent-controller',
      issuer: 'auto',
      tokenPath: '/var/run/secrets/kubernetes.io/serviceaccount/token',
      action: 'deny',
      recheckSeconds: 300,
    },
    policies: {
      'dedicated-service-account': 'deny',
      'unique-service-account': 'deny',
      'token-review-value': 'deny',
      'token-review-required': 'deny',
      'pod-resources': 'deny',
      'istio-sidecar': 'warn',
      ...(Object.fromEntries(INJECTION_WARNINGS.map((w) => [w, 'warn'])) as Record<InjectionWarning, 'warn'>),
    },
  };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * The longest wait, in whole seconds, a Node.js timer honours: setTimeout and setInterval take at most 2^31-1 ms
 * and run a longer delay after 1 ms instead (with a TimeoutOverflowWarning), so a setting past it would fire
 * continuously. Every config setting that feeds a timer is bounded by it.
 */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

// A small schema: leaves say what they accept; objects list their keys.
type Leaf =
  | { t: 'string'; nullable?: boolean; nonEmpty?: boolean }
  | { t: 'bool' }
  | { t: 'port' }
  | { t: 'posint'; max?: number; unit?: string; why?: string }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'strings' }
  | { t: 'quantity' }
  | { t: 'image' }
  /** A Kubernetes name (DNS-1123 subdomain of at most `max` characters); `what` it names, `why` a wrong one matters, the `fix`. */
  | { t: 'name'; nullable?: boolean; max: number; what: string; why: string; fix: string; anyCase?: boolean };
type Schema = Leaf | { t: 'object'; keys: Record<string, Schema> };

const str: Leaf = { t: 'string', nonEmpty: true };
const bool: Leaf = { t: 'bool' };
const port: Leaf = { t: 'port' };
const image: Leaf = { t: 'image' };
const resourceList: Schema = { t: 'object', keys: { cpu: { t: 'quantity' }, memory: { t: 'quantity' } } };
const resources: Schema = { t: 'object', keys: { requests: resourceList, limits: resourceList } };

const SCHEMA: Schema = {
  t: 'object',
  keys: {
    trustDomain: str,
    featureGates: { t: 'object', keys: { globalEnabled: bool, injectTools: bool, nativeSidecars: bool } },
    authBridge: {
      t: 'object',
      keys: {
        defaultMode: { t: 'enum', values: AUTHBRIDGE_MODES },
        mtlsMode: { t: 'enum', values: MTLS_MODES },
        egressEnforcement: { t: 'enum', values: EGRESS_MODES },
        ports: { t: 'object', keys: { outbound: port, inbound: port, admin: port, extProc: port } },
        images: { t: 'object', keys: { proxySidecar: image, lite: image, envoy: image, proxyInit: image } },
        resources,
      },
    },
    spiffeHelper: {
      t: 'object',
      keys: {
        image,
        configMap: {
          t: 'name',
          nullable: true,
          max: 253,
          what: 'a ConfigMap name',
          why: 'no ConfigMap can have it, so every injected pod would wait in ContainerCreating (FailedMount)',
          fix: 'the name of the ConfigMap that holds helper.conf in the agents\' namespaces, or null to render it per pod',
        },
        resources,
      },
    },
    spire: {
      t: 'object',
      keys: {
        // the API server checks a pod's CSI driver name in lowercase (ValidateCSIDriverName)
        csiDriver: {
          t: 'name',
          max: 63,
          what: 'a CSI driver name',
          why: 'the API server would reject every injected pod (its CSI volume names the driver)',
          fix: 'the name of the SPIFFE CSI driver the cluster has (kubectl get csidrivers), such as csi.spiffe.io',
          anyCase: true,
        },
        socketDir: str,
        socketName: str,
      },
    },
    tokenReview: {
      t: 'object',
      keys: {
        configMapNames: { t: 'strings' },
        controllerDeployment: {
          t: 'name',
          max: 253,
          what: 'a Deployment name',
          why: "it would match no Deployment, so lint's controller check, the background audit and the [kagent-restart] reminder would all miss kagent's controller",
          fix: "the name of kagent's controller Deployment alone, such as kagent-controller",
        },
        issuer: str,
        tokenPath: str,
        action: { t: 'enum', values: ['deny', 'mutate'] },
        recheckSeconds: { t: 'posint', max: MAX_TIMER_SECONDS, unit: 'seconds', why: 'about 24.8 days, the longest interval a Node.js timer can wait' },
      },
    },
    policies: {
      t: 'object',
      keys: Object.fromEntries([
        ...[...VALIDATION_RULES, ...INJECTION_POLICIES].map((r) => [r, { t: 'enum', values: POLICY_ACTIONS } as Leaf]),
        ...INJECTION_WARNINGS.map((r) => [r, { t: 'enum', values: WARNING_ACTIONS } as Leaf]),
      ]),
    },
  },
};

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  // a key or certificate passed as --config: say so, and never print its text to a log
  if (typeof v === 'string' && v.includes('-----BEGIN ')) return 'a PEM block (a key or certificate file, not a config file)';
  return `${typeof v} ${typeof v === 'string' ? quoted(v) : JSON.stringify(v)}`;
}

/**
 * The error for a value an enum key does not take: for a policy, what each action does and the fix (a rule that
 * only warns takes warn or off); for any other key, the values it takes and the fix.
 */
function enumProblem(values: readonly string[], input: unknown, path: string): string {
  const rule = /^policies\.(.+)$/.exec(path)?.[1];
  if (rule === undefined) return `${path}: expected one of ${values.join(', ')}, got ${describe(input)}. Fix: write one of ${values.join(', ')}.`;
  const value = typeof input === 'string' ? quoted(input) : describe(input);
  if (!values.includes('deny'))
    return `${path}: ${value} is not allowed: ${rule} only warns (warn or off). Fix: write warn, or off to silence it.`;
  return `${path}: ${value} is not allowed: a policy is deny (reject what breaks ${rule}), warn (admit it with a warning) or off (no check). Fix: write deny, warn or off.`;
}

function merge(schema: Schema, base: unknown, input: unknown, path: string): unknown {
  if (schema.t === 'object') {
    if (!isObject(input))
      throw new ConfigError(
        `${path || 'config'}: expected a mapping, got ${describe(input)}${input === null && path ? ' (a key with nothing under it: remove it, or write {})' : ''}`,
      );
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const key of Object.keys(input)) {
      const sub = Object.hasOwn(schema.keys, key) ? schema.keys[key] : undefined;
      const where = path ? `${path}.${cutKey(key)}` : cutKey(key);
      if (!sub) {
        const known = Object.keys(schema.keys).join(', ');
        throw new ConfigError(`${where}: unknown key (known keys${path ? ` of ${path}` : ''}: ${known})`);
      }
      out[key] = merge(sub, out[key], input[key], where);
    }
    return out;
  }
  switch (schema.t) {
    case 'string':
      if (input === null && schema.nullable) return null;
      if (typeof input !== 'string') throw new ConfigError(`${path}: expected a string, got ${describe(input)}`);
      if (schema.nonEmpty && input.trim() === '') throw new ConfigError(`${path}: must not be empty`);
      return input;
    case 'bool':
      if (typeof input !== 'boolean') throw new ConfigError(`${path}: expected true or false, got ${describe(input)}`);
      return input;
    case 'port':
      if (typeof input !== 'number' || !Number.isInteger(input) || input < 1 || input > 65535)
        throw new ConfigError(`${path}: expected a port number 1-65535, got ${describe(input)}`);
      return input;
    case 'posint':
      if (typeof input !== 'number' || !Number.isInteger(input) || input < 1 || (schema.max !== undefined && input > schema.max))
        throw new ConfigError(
          schema.max === undefined
            ? `${path}: expected a positive whole number, got ${describe(input)}`
            : `${path}: expected a whole number of ${schema.unit ?? 'units'} from 1 to ${schema.max}${schema.why ? ` (${schema.why})` : ''}, got ${describe(input)}`,
        );
      return input;
    case 'enum':
      if (typeof input !== 'string' || !schema.values.includes(input)) throw new ConfigError(enumProblem(schema.values, input, path));
      return input;
    case 'strings':
      if (!Array.isArray(input) || input.length === 0 || !input.every((s) => typeof s === 'string' && s !== ''))
        throw new ConfigError(`${path}: expected a non-empty list of names, got ${describe(input)}`);
      return [...input];
    case 'quantity':
      return quantityText(input, path, base);
    case 'image':
      return imageText(input, path, base);
    case 'name':
      if (input === null && schema.nullable) return null;
      return nameText(input, path, schema);
  }
}

const QUANTITY_EXPECTED = 'expected a Kubernetes quantity such as 100m, 0.5, 64Mi or 1e3';

/**
 * A resource quantity from the config, checked: the text as given (a YAML number as its shortest decimal text).
 * Refused: anything outside Kubernetes' quantity grammar, negative values (the API server rejects negative
 * requests and limits), values above 2^63-1 (the largest quantity Kubernetes stores), and YAML numbers with more
 * significant digits than a float keeps exactly.
 */
function quantityText(input: unknown, path: string, base: unknown): string {
  let text: string;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) {
      const yaml = Number.isNaN(input) ? '.nan' : input > 0 ? '.inf' : '-.inf';
      throw new ConfigError(`${path}: ${QUANTITY_EXPECTED}, got ${yaml} (YAML's ${Number.isNaN(input) ? 'not-a-number' : 'infinity'}), which is not a quantity`);
    }
    text = String(input);
    const digits = /^-?([0-9.]+)/.exec(text)![1]!.replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
    // More digits than a float keeps for sure: the YAML text may have been rounded, and the number alone cannot tell
    // (1234567890123456.1 arrives as the integer 1234567890123456). Quoted, the text is read exactly.
    if (digits.length > 15)
      throw new ConfigError(
        `${path}: YAML reads ${text} as a floating-point number, which may have rounded what you wrote; quote it ("...") so it is read as the exact quantity`,
      );
  } else if (typeof input === 'string') text = input;
  else throw new ConfigError(`${path}: ${QUANTITY_EXPECTED}, got ${describe(input)}`);
  let q;
  try {
    q = parseQuantity(text);
  } catch (err) {
    if (!(err instanceof QuantityError)) throw err;
    throw new ConfigError(`${path}: ${QUANTITY_EXPECTED}, got ${describe(input)} (${err.message})`);
  }
  if (q.negative)
    throw new ConfigError(
      `${path}: ${text} is negative; the API server rejects negative resource requests and limits, so every injected pod would fail. Use 0 or more, such as 100m`,
    );
  // (a binary-SI value past it is capped by the parse, as apimachinery caps it: caught here by that cap)
  if (exceedsMaxQuantity(q) || (q.format === 'BinarySI' && q.coefficient === MAX_QUANTITY && q.exponent === 0))
    throw new ConfigError(
      `${path}: ${text} is more than 2^63-1 (about 9.2e18), the largest quantity Kubernetes stores; use a realistic value such as ${path.endsWith('.memory') ? '256Mi' : '500m'}`,
    );
  if (path.endsWith('.memory')) return checkMemory(q, text, path, typeof base === 'string' ? base : undefined);
  return text;
}

/** 1Mi: less memory than any container runs in. */
const MEMORY_FLOOR = 1n << 20n;

/**
 * A memory quantity is 0 or at least MEMORY_FLOOR: `256m` is 0.256 bytes (m is milli; the classic typo for 256Mi),
 * and `1` one byte. The API server takes both and the kubelet rounds up to whole bytes, so the injected containers
 * would get a limit nothing runs in (every agent pod stuck in Init) or a request that reserves nothing: refused. A
 * fraction of a byte on an amount that runs (`0.1Gi`, 107374182.4 bytes) is harmless, but the API server warns about
 * it on every pod: the text returned is then the whole number of bytes the kubelet rounds it up to.
 */
function checkMemory(q: Quantity, text: string, path: string, usual = '64Mi'): string {
  const limit = /\.limits\.memory$/.test(path);
  const effect = (bytes: bigint) =>
    limit
      ? `the kubelet would give the injected containers a memory limit of ${bytes} byte${bytes === 1n ? '' : 's'}, in which nothing runs, so every agent pod would stick in Init`
      : `the injected containers would request ${bytes} byte${bytes === 1n ? '' : 's'} of memory, so the scheduler would reserve none for them and agent pods would be evicted first`;
  // the number as written, for the likely intent (256m or 256 -> 256Mi); else a usual amount
  const number = /^\+?([0-9]*\.?[0-9]+)(m|)$/.exec(text)?.[1];
  const likely = number !== undefined && Number(number) >= 16 && Number(number) <= 16384 ? `${number.replace(/^0+(?=\d)/, '')}Mi` : undefined;
  const suggest = likely ? `write ${likely}` : `write the amount with a binary suffix, such as ${usual}`;
  const scale = q.exponent < 0 ? 10n ** BigInt(-q.exponent) : 1n;
  const fractional = q.exponent < 0 && q.coefficient % scale !== 0n;
  const bytes = q.exponent >= 0 ? q.coefficient * 10n ** BigInt(q.exponent) : q.coefficient / scale + (fractional ? 1n : 0n);
  if (bytes > 0n && bytes < MEMORY_FLOOR) {
    const what = fractional
      ? `is not a whole number of bytes${/m$/.test(text) ? ' (the suffix m is milli, a thousandth; mebibytes is Mi)' : ''}`
      : `is ${bytes} byte${bytes === 1n ? '' : 's'}, less than 1Mi${/^\+?[0-9.]+$/.test(text) ? ' (a number without a suffix is bytes)' : ''}`;
    throw new ConfigError(`${path}: ${text} ${what}; ${effect(bytes)}. Fix: ${suggest}`);
  }
  return fractional ? String(bytes) : text;
}

/**
 * An image from the config, checked against the reference grammar the kubelet parses (webhook/image-ref.ts): one it
 * refuses would fail every injected pod (InvalidImageName; white space around it: the API server rejects the pod).
 */
function imageText(input: unknown, path: string, example: unknown): string {
  if (typeof input !== 'string') throw new ConfigError(`${path}: expected a string, got ${describe(input)}`);
  if (input.trim() === '') throw new ConfigError(`${path}: must not be empty`);
  const problem = imageReferenceProblem(input);
  if (!problem) return input;
  const fix = problem.corrected
    ? `write ${problem.corrected}`
    : `write an image reference such as ${typeof example === 'string' && imageReferenceProblem(example) === undefined ? example : 'registry.example.com/team/image:v1'}`;
  throw new ConfigError(
    // the whole text, escaped, up to a length no image has (a trailing line break must show)
    `${path}: ${input.length <= 300 ? printable(JSON.stringify(input)) : quoted(input)} is not an image reference: it ${problem.reason}; every injected pod would fail (InvalidImageName, or refused by the API server). Fix: ${fix}`,
  );
}

/** A name from the config that must be one a Kubernetes object can have (schema leaf `name`). */
function nameText(input: unknown, path: string, schema: Extract<Leaf, { t: 'name' }>): string {
  if (typeof input !== 'string') throw new ConfigError(`${path}: expected a string, got ${describe(input)}`);
  if (input.trim() === '') throw new ConfigError(`${path}: must not be empty`);
  if (isDnsSubdomain(schema.anyCase ? input.toLowerCase() : input, schema.max)) return input;
  // kubectl's deploy/<name>, or <namespace>/<name>: the name alone is wanted
  const slash = input.lastIndexOf('/');
  const last = input.slice(slash + 1);
  let fix = schema.fix;
  if (slash >= 0 && isDnsSubdomain(last, schema.max)) {
    const prefix = input.slice(0, slash + 1);
    const what = /^(deploy|deployments?)(\.apps)?\/$/i.test(prefix) ? `kubectl's ${prefix} prefix` : `${quoted(prefix)} (a namespace or kind is not part of the name)`;
    fix = `the name alone, without ${what}: ${last}`;
  }
  const letters = schema.anyCase ? 'letters' : 'lowercase letters';
  throw new ConfigError(
    `${path}: expected ${schema.what} (at most ${schema.max} ${letters}, digits, '-' and '.', beginning and ending with a letter or digit), got ${describe(input)}; ${schema.why}. Fix: ${fix}`,
  );
}

/** Validates a parsed config object (or undefined/null for "all defaults") against the schema. */
export function configFromObject(input: unknown): Config {
  const base = defaults();
  if (input === undefined || input === null) return deepFreeze(base);
  const cfg = merge(SCHEMA, base, input, '') as Config;
  const ports = Object.entries(cfg.authBridge.ports);
  for (let i = 0; i < ports.length; i++)
    for (let j = i + 1; j < ports.length; j++)
      if (ports[i][1] === ports[j][1])
        throw new ConfigError(
          `authBridge.ports: ${ports[i][0]} and ${ports[j][0]} both use port ${ports[i][1]}; each needs its own port`,
        );
  checkInjectedPods(cfg);
  // The API server writes every quantity back in canonical form ("1024Mi" -> "1Gi"); the injected containers use
  // that form too, so the pod a re-invocation sees is the one injection renders (and it returns no patch).
  for (const res of [cfg.authBridge.resources, cfg.spiffeHelper.resources])
    for (const list of [res.requests, res.limits])
      for (const r of ['cpu', 'memory'] as const) if (list[r] !== undefined) list[r] = canonicalQuantity(list[r]);
  const issuer = cfg.tokenReview.issuer;
  // an issuer URL is https: OpenID Connect discovery, which service-account issuers follow, requires it
  if (!['auto', 'external', 'internal'].includes(issuer) && !/^https:\/\/[^\s]+$/.test(issuer))
    throw new ConfigError(
      `tokenReview.issuer: expected auto, external, internal or an issuer URL (https://...), got ${describe(issuer)}`,
    );
  // A name no ConfigMap can have (a space, capitals) would match nothing: the token rules, the cache's field
  // selector and the registration's matchConditions would all pass kagent's ConfigMap by, and the webhook fail open.
  cfg.tokenReview.configMapNames.forEach((name, i) => {
    if (!isConfigMapName(name))
      throw new ConfigError(
        `tokenReview.configMapNames[${i}]: expected a ConfigMap name (at most 253 lowercase letters, digits, '-' and '.', beginning and ending with a letter or digit), got ${describe(name)}`,
      );
  });
  return deepFreeze(cfg);
}

/** Whether a name is one a ConfigMap can have: a DNS-1123 subdomain (what the API server checks on create). */
export function isConfigMapName(s: string): boolean {
  return isDnsSubdomain(s, 253);
}

/** Whether `s` is a DNS-1123 subdomain of at most `max` characters (lowercase letters, digits, '-' and '.'). */
function isDnsSubdomain(s: string, max: number): boolean {
  return s.length <= max && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s);
}

/**
 * Settings each valid on their own that would make every injected pod one the API server rejects (after
 * admission, so every agent pod would fail to create): mount paths that collide, requests above limits, and
 * names that cannot go into a SPIFFE ID or spiffe-helper's config file.
 */
function checkInjectedPods(cfg: Config): void {
  if (!/^[a-z0-9._-]+$/.test(cfg.trustDomain))
    throw new ConfigError(`trustDomain: ${describe(cfg.trustDomain)} is not a SPIFFE trust domain name (lowercase letters, digits, '.', '-' and '_' only)`);
  const dir = cfg.spire.socketDir;
  if (!/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]\/*$/.test(dir))
    throw new ConfigError(`spire.socketDir: expected an absolute directory path of letters, digits, '.', '_', '-' and '/' (not / itself), got ${describe(dir)}`);
  const trimmed = dir.replace(/\/+$/, '');
  for (const [taken, what] of [
    [SVID_DIR, 'the SVID directory spiffe-helper writes and the AuthBridge container reads'],
    [HELPER_CONFIG_DIR, "spiffe-helper's config directory"],
  ] as const)
    if (trimmed === taken)
      throw new ConfigError(`spire.socketDir: ${taken} is already ${what}; two volumes would be mounted at one path and the API server would reject every injected pod`);
  if (!/^[A-Za-z0-9._-]+$/.test(cfg.spire.socketName))
    throw new ConfigError(`spire.socketName: expected a file name of letters, digits, '.', '_' and '-', got ${describe(cfg.spire.socketName)}`);
  for (const [path, res] of [
    ['authBridge.resources', cfg.authBridge.resources],
    ['spiffeHelper.resources', cfg.spiffeHelper.resources],
  ] as const)
    for (const r of ['cpu', 'memory'] as const) {
      const request = res.requests?.[r];
      const limit = res.limits?.[r];
      if (request !== undefined && limit !== undefined && compareQuantities(parseQuantity(request), parseQuantity(limit)) > 0)
        throw new ConfigError(
          `${path}: requests.${r} (${request}) is more than limits.${r} (${limit}); the API server would reject every injected pod. Set both, with the request at most the limit`,
        );
    }
}

/** Parses config YAML text. `source` names the file in error messages. */
export function parseConfig(text: string, source = 'config'): Config {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new ConfigError(`${source}: not valid YAML: ${msg}`);
  }
  try {
    return configFromObject(doc);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`);
    throw err;
  }
}

/** Reads and validates a config file; every failure is a ConfigError with one clear line. */
export function loadConfig(file: string | undefined): Config {
  if (!file) return defaultConfig();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(`cannot read config file ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  return parseConfig(text, file);
}

/** True when the pod labels make it an injection/validation candidate under this config. */
export function isAgentType(labels: Record<string, unknown> | undefined, cfg: Config): boolean {
  const t = labels?.['kagenti.io/type'];
  return t === 'agent' || (t === 'tool' && cfg.featureGates.injectTools);
}
