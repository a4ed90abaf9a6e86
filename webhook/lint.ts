// `kagenti-webhook lint`: the webhook's policies over manifests, before anything is applied (CI, GitOps,
// Helm post-renderer). The rules are those of /validate (rules.ts); this module reads the input, keeps the
// cross-document ServiceAccount index, positions findings and picks the exit code:
//   0 no errors (warnings allowed unless --strict), 1 violations, 2 usage, read or parse errors, 141 stdout's
//   reader went away.
import { createReadStream, existsSync, realpathSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from './config.ts';
import { ConfigError, loadConfig } from './config.ts';
import type { Finding, FileSummary, Format, InputProblem, LintReport, SarifBase } from './lint-format.ts';
import { FORMATS, formatReport, printable, problemAt, STDIN_NAME, summarize } from './lint-format.ts';
import type { RawDocument, SplitLimits } from './manifest-stream.ts';
import {
  DEFAULT_LIMITS,
  InputError,
  ManifestParseError,
  ParsedDocument,
  isBlankDocument,
  readDocuments,
  sourceOf,
  splitDocuments,
} from './manifest-stream.ts';
import type { AgentRef, IssuerInfo, Violation } from './rules.ts';
import {
  agentOf,
  checkControllerTokenReview,
  checkInjection,
  checkObject,
  checkToolSharesAgent,
  checkUncheckedTemplate,
  checkUnique,
  dedicatedDenies,
  RenderedNamespaces,
  remediatedAtAdmission,
  severityFor,
  toolSharingSite,
  toolsAsAgents,
  UNWATCHED_NAMESPACES,
  injectableTemplate,
  unwatchedNamespaceText,
} from './rules.ts';
import type { LabelSelector, OwnerLookup, OwnerRef } from './identity.ts';
import { controllerOf, copySelector, identityKey, isDnsLabel, objectName, objectNamespace, orphanWorkload, selectorMatches, templateOwner } from './identity.ts';
import { isObject } from './json.ts';
import { listItemProblem } from './kubectl-list.ts';
import type { ExcludeGlob } from './glob.ts';
import { compileExclude, excluded } from './glob.ts';

export type { Finding, LintReport } from './lint-format.ts';

/** An input that could not be read or parsed: exit code 2, `file:line:col: error: message` on stderr. */
export type { InputProblem };

export interface LintContext {
  config: Config;
  issuer: IssuerInfo;
  /** namespace for objects without metadata.namespace (default `default`) */
  namespace?: string;
  /** appended to token-review-required warnings when the issuer is unknown: how to decide it */
  issuerHint?: string;
  /**
   * The input updates objects the cluster holds (a Helm upgrade's or rollback's record): a ConfigMap it marks
   * `immutable: true` may already be immutable there (then its data cannot change), or be made so by this update
   * (then it can, and /validate checks it as usual): which, the input does not tell (a Helm record holds no earlier
   * release's manifest). Its token findings are marked `immutable`, and their fix says what to do in either case.
   */
  updatesCluster?: boolean;
  limits?: SplitLimits;
}

/** A directory as the file system resolves it (symbolic links followed), so two spellings of one are one scope. */
function realDirectory(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

/** A violation found on an object, before it is positioned: the other agent of a unique-service-account one. */
interface Found {
  v: Violation;
  other?: IndexedAgent;
  immutable?: true;
}

interface IndexedAgent {
  ref: AgentRef;
  file: string;
  line: number;
}

/**
 * A tool (`kagenti.io/type: tool` while featureGates.injectTools is off) in the index: no agent, so it claims nothing,
 * but it is warned (rules.ts checkToolSharesAgent, as /validate warns it) when an agent of the input is on its
 * ServiceAccount, whether that agent comes before or after it. The warning is made when the findings are read
 * (Linter.settleTools), at the position found when the tool was read.
 */
interface IndexedTool {
  entry: IndexedAgent;
  /** its template is its owner's (a dump's ReplicaSet or pod): reported only when no owner of it is in the input, once */
  owned: boolean;
  /** the warning as positioned, without its message; undefined until it is positioned (`doc`) */
  at?: Finding;
  /**
   * A tool read before any agent on its ServiceAccount: its document, to position the warning should one come (most
   * tools never share, and positions cost a second parse). Dropped once it is positioned.
   */
  doc?: { held: HeldDocument; prefix: string; warning: Violation; source: string | undefined };
  /** where its findings are in Linter.chunks: the object's other findings (`base`), then the warning if any */
  chunk: Finding[];
  base: Finding[];
}

/** Agents compared per (namespace, ServiceAccount) bucket; more only add to the index's count. Tools likewise. */
const MAX_BUCKET = 64;

/** Deployments' and StatefulSets' selectors kept for the orphan rule; past this, further ones are not (see Linter). */
const MAX_SELECTORS = 50_000;

function workloadKey(namespace: string, kind: string, name: string): string {
  return `${namespace}\u0000${kind}\u0000${name}`;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return v.length > 40 ? `the string ${JSON.stringify(v.slice(0, 40))}…` : `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'a mapping without apiVersion and kind';
  return `${typeof v} ${String(v)}`;
}

/**
 * A copy of a string that does not keep its source alive. Strings cut from a document's text are slices
 * that retain the whole text (and the chunk it came from); the index and findings outlive the document.
 */
const interned = new Map<string, string>();
function detach(s: string): string;
function detach(s: string | undefined): string | undefined;
function detach(s: string | undefined): string | undefined {
  if (s === undefined || s.length < 13) return s;
  const hit = interned.get(s);
  if (hit !== undefined) return hit;
  const copy = Buffer.from(s, 'utf8').toString('utf8');
  if (interned.size < 50_000) interned.set(copy, copy);
  return copy;
}

function detachRef(ref: AgentRef): AgentRef {
  const out: AgentRef = {
    kind: detach(ref.kind),
    name: detach(ref.name),
    namespace: detach(ref.namespace),
    serviceAccount: detach(ref.serviceAccount),
  };
  if (ref.agent !== undefined) out.agent = detach(ref.agent);
  if (ref.serviceAccountField !== undefined) out.serviceAccountField = ref.serviceAccountField;
  if (ref.source) out.source = { kind: detach(ref.source.kind), name: detach(ref.source.name) };
  return out;
}

const CONFIG_ISSUER_FIX = 'set tokenReview.issuer (external, internal or the issuer URL) in the webhook config.';

/** Text of held documents (below) kept at most; past it, documents are checked with the Namespaces shown so far. */
const MAX_HELD_BYTES = 16 * 1024 * 1024;

/** A probe's key for "the check listed the labels" (then any label may matter). */
const ANY_LABEL = '\u0000any';

/**
 * Namespace labels for a namespace the input has not shown (yet): none, as for a namespace without labels, while
 * noting which label keys the injection check read, so that the check is made again only if a Namespace document
 * that comes later sets one of them.
 */
function labelProbe(read: Set<string>): Record<string, string> {
  return new Proxy({} as Record<string, string>, {
    get(_t, k) {
      if (typeof k === 'string') read.add(k);
      return undefined;
    },
    has(_t, k) {
      if (typeof k === 'string') read.add(k);
      return false;
    },
    ownKeys() {
      read.add(ANY_LABEL);
      return [];
    },
  });
}

/** A document kept (its bytes, not its text: no slice of the input stays alive) for the objects held from it. */
interface HeldDocument {
  bytes: Buffer;
  file: string;
  line: number;
  /** an object of a JSON stream (RawDocument.json) */
  json: boolean;
  /** objects of it still held */
  refs: number;
}

/**
 * An agent object whose injection check read the labels of a namespace the input had not shown when it was read:
 * its findings are in `chunk`, and are made again with the labels if a Namespace document of that name comes later.
 */
interface HeldObject {
  doc: HeldDocument;
  namespace: string;
  /** the label keys the check read (one array shared by the objects that read the same) */
  keys: readonly string[];
  /** `items.N.` of a List's item, else '' */
  prefix: string;
  /** the item's index in the List, else -1 */
  item: number;
  /** the findings of the object (as reported: after unwatched()), in this.chunks */
  chunk: Finding[];
  /** the object's findings other than the injection's: the object rules' and unique-service-account's (if any) */
  before?: Finding[];
  after?: Finding[];
}

/**
 * The lint engine: feed it documents (file by file, in order); it collects findings, input problems and
 * counts. Memory: the findings plus one index entry per agent workload, never the documents.
 */
export class Linter {
  /** the findings, one array per object with findings, in input order (a held object's array is replaced in place) */
  private readonly chunks: Finding[][] = [];
  private flat: Finding[] | null = null;
  /** objects held for a Namespace document that may come later, by namespace */
  private readonly held = new Map<string, HeldObject[]>();
  private heldBytes = 0;
  private allNamespacesNoted = false;
  private readonly keySets = new Map<string, readonly string[]>();
  readonly problems: InputProblem[] = [];
  readonly files: FileSummary[] = [];
  documents = 0;
  private readonly ctx: LintContext;
  private readonly agents = new Map<string, IndexedAgent[]>();
  /** the tools, by the agents' keys (at most MAX_BUCKET each); their warnings are made again when this is set */
  private readonly tools = new Map<string, IndexedTool[]>();
  private toolsDirty = false;
  /** bytes of the documents IndexedTool.doc keeps (at most MAX_HELD_BYTES; past it, tools are positioned when read) */
  private toolBytes = 0;
  /** the config with tools as agents, how /validate reads a tool's identity; null with injectTools on or the rule off */
  private readonly toolsAsAgents: Config | null;
  /**
   * The render stands in for the cluster's cache in the orphan rule (identity.ts countsAsWorkload): the selector
   * of each Deployment and StatefulSet seen (null: one that selects nothing), by namespace, kind and name.
   */
  private readonly selectors = new Map<string, LabelSelector | null>();
  /**
   * Orphans (ReplicaSets, pods without an owner) indexed as the Deployment or StatefulSet their name names before
   * the render showed it, with their labels: when it comes, those its selector does not select become themselves,
   * as at admission, so the order of the documents does not matter.
   */
  private readonly orphans = new Map<string, { entry: IndexedAgent; labels: Record<string, string> }[]>();
  /**
   * The render stands in for the cluster's cache in the owner lookups too (identity.ts topLevelWorkload): the
   * controller owner (controllerOf) and labels of each ReplicaSet, Job and CronJob seen, so that a dump's pod of a
   * CronJob's Job is that CronJob, as at admission. Noted for every item of a List before any is checked.
   */
  private readonly owners = new Map<string, { owner: OwnerRef | null; labels: Record<string, string> }>();
  private readonly lookup: OwnerLookup;
  private lastScope: { file: string; scope: string } | undefined;
  /**
   * The labels of the Namespaces the render has shown so far (kustomize puts them first), for the injection checks
   * that read them (the authbridge mode, `pod-security`, `namespace-mode-label`), as the webhook reads the cluster's.
   */
  private readonly namespaces = new RenderedNamespaces(detach);

  constructor(ctx: LintContext) {
    this.ctx = ctx;
    const config = ctx.config;
    this.toolsAsAgents =
      config.featureGates.injectTools || !severityFor(config.policies['unique-service-account'])
        ? null
        : toolsAsAgents(config);
    // what the render has shown of a pod's or ReplicaSet's owners (undefined: not in the input, as not cached)
    const lookup: OwnerLookup = (kind, namespace, name) => this.owners.get(workloadKey(namespace, kind, name))?.owner;
    lookup.selector = (kind, namespace, name) => this.selectors.get(workloadKey(namespace, kind, name));
    lookup.labels = (kind, namespace, name) => this.owners.get(workloadKey(namespace, kind, name))?.labels;
    this.lookup = lookup;
  }

  /** The scope of a file for objects without a namespace (without -n): its directory, or stdin. */
  private scopeOf(file: string): string {
    if (this.lastScope?.file !== file) this.lastScope = { file, scope: file === STDIN_NAME ? file : realDirectory(dirname(resolve(file))) };
    return this.lastScope.scope;
  }

  /** Records a ReplicaSet's, Job's or CronJob's controller owner and labels for the lookup (at most MAX_SELECTORS). */
  private noteOwner(obj: Record<string, any>): void {
    if (obj.kind !== 'ReplicaSet' && obj.kind !== 'Job' && obj.kind !== 'CronJob') return;
    const key = workloadKey(objectNamespace(obj, this.ctx.namespace || 'default'), obj.kind, objectName(obj));
    if (this.owners.has(key) || this.owners.size >= MAX_SELECTORS) return;
    const c = controllerOf(obj);
    const owner: OwnerRef | null = c
      ? { kind: detach(c.kind), name: detach(c.name), ...(c.controller ? { controller: true as const } : {}), ...(c.apiVersion ? { apiVersion: detach(c.apiVersion) } : {}) }
      : null;
    const labels: Record<string, string> = {};
    const md = isObject(obj.metadata) && isObject(obj.metadata.labels) ? obj.metadata.labels : {};
    for (const [k, v] of Object.entries(md)) if (typeof v === 'string') labels[detach(k)] = detach(v);
    this.owners.set(detach(key), { owner, labels });
  }

  /**
   * Records a Deployment's or StatefulSet's selector (one without a selector object, which the API server never
   * admits, is left out, as /validate leaves it), and turns the orphans indexed as it that it does not select
   * into themselves.
   */
  private noteWorkload(obj: Record<string, any>, kind: string, namespace: string): void {
    const selector = isObject(obj.spec) ? obj.spec.selector : undefined;
    if (!isObject(selector)) return;
    const key = workloadKey(namespace, kind, objectName(obj));
    if (this.selectors.has(key) || this.selectors.size >= MAX_SELECTORS) return;
    const copy = copySelector(selector, detach);
    this.selectors.set(key, copy);
    for (const { entry, labels } of this.orphans.get(key) ?? []) {
      const self = entry.ref.source;
      if (self && !selectorMatches(copy, labels)) {
        const { source: _source, ...rest } = entry.ref;
        entry.ref = { ...rest, kind: self.kind, name: self.name };
        if (this.tools.size) this.toolsDirty = true;
      }
    }
    this.orphans.delete(key);
  }

  /**
   * Notes the Namespace documents of an input before it is linted (a first pass over a file: only documents that
   * name `Namespace` are parsed; what cannot be read is reported by the lint pass).
   */
  async noteNamespacesOf(source: AsyncIterable<Buffer | Uint8Array | string>): Promise<void> {
    try {
      for await (const raw of readDocuments(source, this.ctx.limits ?? DEFAULT_LIMITS)) {
        if (!/\bNamespace\b/.test(raw.text)) continue;
        let v: unknown;
        try {
          v = ParsedDocument.parse(raw.text, raw.json).value;
        } catch {
          continue;
        }
        if (!isObject(v)) continue;
        if (typeof v.kind === 'string' && v.kind.endsWith('List') && Array.isArray(v.items)) {
          for (const it of v.items) if (isObject(it)) this.noteNamespace(it);
        } else this.noteNamespace(v);
      }
    } catch {
      // read again, and reported, by lintStream
    }
  }

  /** Every Namespace of the input has been noted (noteNamespacesOf): nothing needs to be held for one. */
  namespacesComplete(): void {
    this.allNamespacesNoted = true;
  }

  /** The findings in input order: files and documents as read, a document's in the order of their lines. */
  get findings(): Finding[] {
    if (this.toolsDirty) this.settleTools();
    this.flat ??= this.chunks.flat();
    return this.flat;
  }

  /**
   * Makes the tools' warnings with the agents indexed by now, in place of those they had: checkToolSharesAgent names
   * the first agent in input order and counts the others. Of a tool's objects in a dump, one is reported: the owner,
   * else (no owner in the input) the first of its ReplicaSets and pods.
   */
  private settleTools(): void {
    this.toolsDirty = false;
    this.flat = null;
    for (const [key, tools] of this.tools) {
      const agents = this.agents.get(key)?.map((b) => b.ref) ?? [];
      const reporter = new Map<string, IndexedTool>();
      if (agents.length)
        for (const t of tools) {
          const id = identityKey(t.entry.ref);
          const r = reporter.get(id);
          if (!r || (r.owned && !t.owned)) reporter.set(id, t);
        }
      for (const t of tools) {
        const reported = agents.length > 0 && (!t.owned || reporter.get(identityKey(t.entry.ref)) === t);
        const found = reported ? checkToolSharesAgent(t.entry.ref, agents, this.ctx.config) : [];
        const at = found.length ? this.toolPosition(t) : undefined;
        const list = at ? [...t.base, ...found.map((v): Finding => ({ ...at, severity: v.severity, message: v.message }))] : t.base;
        if (found.length) list.sort((a, b) => a.line - b.line || a.column - b.column);
        t.chunk.splice(0, t.chunk.length, ...list);
      }
    }
  }

  /** A tool's warning as positioned, without its message: from its kept document the first time (IndexedTool.doc). */
  private toolPosition(t: IndexedTool): Finding {
    if (t.at) return t.at;
    const { held, prefix, warning, source } = t.doc!;
    const text = held.bytes.toString('utf8');
    try {
      // the same text as when it was read: it parses
      t.at = this.finding({ v: warning }, held.file, held.line, ParsedDocument.parse(text, held.json), prefix, source);
    } catch (err) {
      // a key the full parser refuses where the fast path read the document (a number past float64): its first line
      if (!(err instanceof ManifestParseError || err instanceof RangeError)) throw err;
      const line = held.line + firstLineOffset(text);
      t.at = { rule: warning.rule, severity: warning.severity, message: '', file: held.file, line, column: 1, kind: warning.kind, namespace: warning.namespace, name: warning.name, path: detach(prefix + warning.path) };
      if (source) t.at.source = source;
    }
    this.releaseTool(t);
    return t.at;
  }

  private releaseTool(t: IndexedTool): void {
    if (t.doc && --t.doc.held.refs === 0) this.toolBytes -= t.doc.held.bytes.length;
    delete t.doc;
  }

  /** Indexes a tool (see IndexedTool). */
  private indexTool(key: string, tool: IndexedTool, obj: Record<string, any>): void {
    let tools = this.tools.get(key);
    if (!tools) this.tools.set(key, (tools = []));
    tools.push(tool);
    this.noteOrphan(tool.entry, obj);
    this.toolsDirty = true;
  }

  /**
   * Notes an indexed object that counts as a Deployment or StatefulSet by its name while the render has not shown
   * that workload (yet), with its labels: noteWorkload makes it itself if that workload's selector does not select it.
   */
  private noteOrphan(entry: IndexedAgent, obj: Record<string, any>): void {
    const ref = entry.ref;
    const w = orphanWorkload(obj.kind, obj);
    if (!w || w.kind !== ref.kind || w.name !== ref.name || (w.kind !== 'Deployment' && w.kind !== 'StatefulSet')) return;
    const key = workloadKey(ref.namespace, w.kind, w.name);
    if (this.selectors.has(key)) return;
    const labels: Record<string, string> = {};
    const md = isObject(obj.metadata) && isObject(obj.metadata.labels) ? obj.metadata.labels : {};
    for (const [k, v] of Object.entries(md)) if (typeof v === 'string') labels[detach(k)] = detach(v);
    let list = this.orphans.get(key);
    if (!list) this.orphans.set(key, (list = []));
    list.push({ entry, labels });
  }

  /**
   * The index key of an agent's or tool's ServiceAccount. Without -n, objects without a namespace are compared within
   * their file's directory only: the files of one directory are applied together, to one namespace (kubectl apply -f
   * DIR -n NS, an Argo CD Application per directory, helm template --output-dir's files of one chart), another
   * directory may go to another one. Stdin is one scope of its own.
   */
  private bucketKey(obj: Record<string, any>, file: string, ref: AgentRef): string {
    const scope = this.ctx.namespace === undefined && !hasNamespace(obj) ? `${this.scopeOf(file)}\u0000` : '';
    return detach(`${scope}${ref.namespace}\n${ref.serviceAccount}`);
  }

  report(strict: boolean): LintReport {
    return { findings: this.findings, files: this.files, documents: this.documents, strict, problems: this.problems };
  }

  /** Exit code: 2 input problems, 1 errors (or warnings with strict), else 0. */
  exitCode(strict: boolean): number {
    if (this.problems.length) return 2;
    const s = summarize(this.report(strict));
    return s.errors > 0 || (strict && s.warnings > 0) ? 1 : 0;
  }

  private fileEntry(file: string): FileSummary {
    const entry = { file, documents: 0 };
    this.files.push(entry);
    return entry;
  }

  /** Lints a byte stream (file or stdin). Read errors and limits become input problems. */
  async lintStream(file: string, source: AsyncIterable<Buffer | Uint8Array | string>): Promise<void> {
    const entry = this.fileEntry(file);
    try {
      for await (const doc of readDocuments(source, this.ctx.limits ?? DEFAULT_LIMITS)) this.lintDocument(entry, doc);
    } catch (err) {
      if (err instanceof InputError) this.problems.push({ file, line: err.line, column: err.column, message: err.message });
      else {
        const e = err as NodeJS.ErrnoException;
        const why =
          e.code === 'ENOENT' ? 'no such file or directory' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
        this.problems.push({ file, message: `cannot read: ${why}` });
      }
    }
  }

  /** Lints a whole string (a Helm release's manifest). */
  lintText(file: string, text: string): void {
    const entry = this.fileEntry(file);
    try {
      for (const doc of splitDocuments(text, this.ctx.limits ?? DEFAULT_LIMITS)) this.lintDocument(entry, doc);
    } catch (err) {
      if (err instanceof InputError) this.problems.push({ file, line: err.line, column: err.column, message: err.message });
      else throw err;
    }
  }

  /** A document's parse error as an input problem of that document (the rest of the file is still read); false for other errors. */
  private parseProblem(file: string, raw: RawDocument, err: unknown): boolean {
    if (err instanceof ManifestParseError) this.problems.push({ file, line: raw.line + err.line - 1, column: err.column, message: err.message });
    else if (err instanceof RangeError) this.problems.push({ file, line: raw.line, column: 1, message: 'the document is nested too deeply to read' });
    else return false;
    return true;
  }

  private lintDocument(entry: FileSummary, raw: RawDocument): void {
    if (isBlankDocument(raw.text)) return;
    const file = entry.file;
    let pd: ParsedDocument;
    try {
      pd = ParsedDocument.parse(raw.text, raw.json);
    } catch (err) {
      if (this.parseProblem(file, raw, err)) return;
      throw err;
    }
    // Positions may need the full parser after the fast path read the document (locate): should that reject it, the
    // document is a parse error, without the findings it had so far.
    const before = { chunks: this.chunks.length, documents: this.documents, inFile: entry.documents };
    try {
      this.lintParsed(entry, raw, pd);
    } catch (err) {
      if (!this.parseProblem(file, raw, err)) throw err;
      const dropped = new Set(this.chunks.splice(before.chunks));
      this.flat = null;
      for (const [key, tools] of this.tools) {
        const kept = tools.filter((t) => !dropped.has(t.chunk));
        if (kept.length === tools.length) continue;
        for (const t of tools) if (dropped.has(t.chunk)) this.releaseTool(t);
        if (kept.length) this.tools.set(key, kept);
        else this.tools.delete(key);
        this.toolsDirty = true;
      }
      for (const [ns, list] of this.held) {
        const kept = list.filter((h) => !dropped.has(h.chunk));
        for (const h of list) if (dropped.has(h.chunk)) this.release(h);
        if (kept.length) this.held.set(ns, kept);
        else this.held.delete(ns);
      }
      this.documents = before.documents;
      entry.documents = before.inFile;
    }
  }

  private lintParsed(entry: FileSummary, raw: RawDocument, pd: ParsedDocument): void {
    const file = entry.file;
    const v = pd.value;
    if (v === null || v === undefined) return; // `--- null` or `--- ~`: nothing to apply
    if (!isObject(v) || typeof v.apiVersion !== 'string' || typeof v.kind !== 'string' || !v.apiVersion || !v.kind) {
      const at = pd.locate('');
      this.problems.push({
        file,
        line: raw.line + at.line - 1,
        column: at.column,
        message: `document ${raw.index + 1} is not a Kubernetes object: expected a mapping with apiVersion and kind, got ${describe(v)}`,
      });
      return;
    }
    const list = v.kind.endsWith('List') && Array.isArray(v.items);
    // a list in the list: kubectl refuses the file, an input problem as a document it cannot read is
    for (let i = 0; list && i < v.items.length; i++) {
      const nested = listItemProblem(v.kind, i, v.items[i]);
      if (!nested) continue;
      const at = pd.locate(`items.${i}.items`);
      this.problems.push({ file, line: raw.line + at.line - 1, column: at.column, message: nested });
      return;
    }
    this.documents++;
    entry.documents++;
    let objects: { obj: Record<string, any>; prefix: string; item: number }[];
    if (list) {
      objects = [];
      v.items.forEach((it: unknown, i: number) => {
        if (isObject(it) && typeof it.kind === 'string') objects.push({ obj: it, prefix: `items.${i}.`, item: i });
        else {
          const at = pd.locate(`items.${i}`);
          this.problems.push({
            file,
            line: raw.line + at.line - 1,
            column: at.column,
            message: `items[${i}] of ${v.kind} is not a Kubernetes object (expected a mapping with kind)`,
          });
        }
      });
    } else objects = [{ obj: v, prefix: '', item: -1 }];
    for (const { obj } of objects) this.noteOwner(obj);

    let source: string | undefined | null = null;
    let heldDoc: HeldDocument | undefined;
    let toolDoc: HeldDocument | undefined;
    for (const { obj, prefix, item } of objects) {
      const ns = objectNamespace(obj, this.ctx.namespace || 'default');
      const unwatched = UNWATCHED_NAMESPACES.includes(ns);
      const before: Found[] = [];
      const after: Found[] = [];
      // An object whose template is its owner's (a dump's ReplicaSets, Jobs and controller-made pods) is checked
      // there, as /validate skips it ("owned by Deployment web (checked there)"): neither the object's rules nor the
      // injection's are reported on it (unique-service-account still counts it, as the agent its owner is).
      const owned = templateOwner(obj, true) !== null;
      // An agent template there gets one unwatched-namespace warning (shown() makes it), findings or none, as inject
      // gives one for it: its pods get no sidecars.
      if (unwatched && !owned && injectableTemplate(obj, this.ctx.config))
        before.push({ v: { rule: 'unwatched-namespace', severity: 'warning', message: '', path: '', kind: obj.kind, namespace: ns, name: objectName(obj) } });
      // With tokenReview.action: mutate the webhook fixes the token-review value on apply: a warning here, not a
      // failed pipeline or Helm release.
      const immutable = this.ctx.updatesCluster === true && obj.kind === 'ConfigMap' && obj.immutable === true;
      // (/mutate never patches an immutable ConfigMap's UPDATE)
      const remediated = !immutable && remediatedAtAdmission(obj, this.ctx.config, this.ctx.issuer);
      if (!owned)
        for (const viol of checkObject(obj, { config: this.ctx.config, issuer: this.ctx.issuer, namespace: this.ctx.namespace, generatedNames: true }))
          before.push({
            v: remediated && viol.rule.startsWith('token-review-')
              ? { ...viol, severity: 'warning', message: `${viol.message} The webhook will set K8S_TOKEN_REVIEW: "true" when it is applied (tokenReview.action: mutate).` }
              : immutable && viol.rule.startsWith('token-review-')
                ? { ...viol, message: `${viol.message} If ConfigMap ${viol.namespace}/${viol.name} is already immutable in the cluster (not made so by this update), the API server refuses any change to its data: delete it and create it again instead (kubectl replace --force -f <file>, or kubectl delete, then kubectl apply).` }
                : viol,
            ...(immutable && viol.rule.startsWith('token-review-') ? { immutable: true as const } : {}),
          });
      // kagent's controller Deployment: whether K8S_TOKEN_REVIEW from the ConfigMap reaches it at all
      if (!owned) for (const viol of checkControllerTokenReview(obj, { config: this.ctx.config, issuer: this.ctx.issuer, namespace: this.ctx.namespace })) before.push({ v: viol });
      // an agent template in a kind lint does not know (a Rollout, another group's Deployment): not checked here
      const unchecked = checkUncheckedTemplate(obj, { config: this.ctx.config, namespace: this.ctx.namespace, tool: 'lint' });
      if (unchecked) before.push({ v: unchecked });
      this.noteNamespace(obj);
      // What /mutate would deny in the pods of this workload (or this Pod): the same check /validate makes. The labels
      // of a namespace the input has not shown yet are probed: should the check read one, the object is held until
      // the input is read, so that a Namespace document after it counts as one before it does.
      let read: Set<string> | undefined;
      let labels = this.namespaces.labels(ns);
      if (!owned && labels === undefined && !this.allNamespacesNoted && this.heldBytes < MAX_HELD_BYTES) labels = labelProbe((read = new Set()));
      const inj = owned ? [] : this.injectionFound(obj, labels);
      const hold = read !== undefined && read.size > 0;
      if (obj.kind === 'Deployment' || obj.kind === 'StatefulSet') this.noteWorkload(obj, obj.kind, ns);
      const ref = unwatched ? null : agentOf(obj, this.ctx.config, this.ctx.namespace || 'default', this.lookup, Date.now());
      if (ref) {
        const key = this.bucketKey(obj, file, ref);
        let bucket = this.agents.get(key);
        if (!bucket) this.agents.set(key, (bucket = []));
        // an owned object is reported only as the first of its agent in the input: its owner (or a sibling) already
        // was, or will be against it, so a dump does not repeat the conflict on every ReplicaSet and pod
        const id = identityKey(ref);
        const repeated = owned && bucket.some((b) => identityKey(b.ref) === id);
        if (bucket.length && !repeated && !dedicatedDenies(ref, this.ctx.config)) {
          const uv = checkUnique(ref, bucket.map((b) => b.ref), this.ctx.config);
          if (uv.length) {
            // the first conflicting agent in input order is the one the message names
            const other = bucket.find((b) => checkUnique(ref, [b.ref], this.ctx.config).length > 0);
            for (const u of uv) after.push({ v: u, other });
          }
        }
        if (bucket.length < MAX_BUCKET) {
          // a List's item is at its own `kind:`, not at the List's first line
          const line = prefix ? raw.line + pd.locate(`${prefix}kind`).line - 1 : raw.line + firstLineOffset(raw.text);
          const entry: IndexedAgent = { ref: detachRef(ref), file, line };
          bucket.push(entry);
          // counted as a workload by its name while the render has not shown that workload (yet)
          this.noteOrphan(entry, obj);
          // the tools on this ServiceAccount have an agent more to be warned about
          if (this.tools.has(key)) this.toolsDirty = true;
        }
      }
      // A tool while featureGates.injectTools is off (read as /validate reads it, as if tools were agents): indexed, and
      // warned once the findings are read should an agent of the input be on its ServiceAccount, before or after it.
      // Not when dedicated-service-account denies such an agent (on "default"): its fix ends the sharing too.
      let tool: { ref: AgentRef; key: string } | undefined;
      const toolRef = ref || unwatched || !this.toolsAsAgents ? null : agentOf(obj, this.toolsAsAgents, this.ctx.namespace || 'default', this.lookup, Date.now());
      if (toolRef && !dedicatedDenies(toolRef, this.ctx.config)) {
        const key = this.bucketKey(obj, file, toolRef);
        const tools = this.tools.get(key);
        const id = identityKey(toolRef);
        // an owned object of a tool indexed already is reported at that one (settleTools), as an agent's is
        if (owned && tools?.some((t) => identityKey(t.entry.ref) === id)) {
          // nothing to index
        } else if (tools && tools.length >= MAX_BUCKET) {
          // past the bucket: compared with the agents indexed so far, as an agent past it is
          for (const v of checkToolSharesAgent(toolRef, this.agents.get(key)?.map((b) => b.ref) ?? [], this.ctx.config)) after.push({ v });
        } else tool = { ref: toolRef, key };
      }
      if (!before.length && !inj.length && !after.length && !hold && !tool) continue;
      if (source === null) source = sourceOf(raw.text);
      const at = (f: Found): Finding => this.finding(f, file, raw.line, pd, prefix, source ?? undefined);
      const made = { before: before.map(at), inj: inj.map(at), after: after.map(at) };
      const chunk = this.shown([...made.before, ...made.inj, ...made.after], ns, raw.line, pd, prefix);
      this.chunks.push(chunk);
      this.flat = null;
      if (tool) {
        const site = toolSharingSite(tool.ref);
        const placeholder: Violation = { rule: 'unique-service-account', severity: 'warning', message: '', kind: site.kind, namespace: tool.ref.namespace, name: site.name, path: site.path };
        // a held object's chunk is made anew when its Namespace comes (recheck): the warning then has one of its own
        const own = hold ? [] : chunk;
        if (hold) this.chunks.push(own);
        const indexed: IndexedTool = { entry: { ref: detachRef(tool.ref), file, line: raw.line }, owned, chunk: own, base: own.slice() };
        // positioned now if an agent is on its ServiceAccount already; else its document is kept (up to the limit)
        if (this.agents.has(tool.key) || this.toolBytes >= MAX_HELD_BYTES) indexed.at = at({ v: placeholder });
        else {
          if (!toolDoc) {
            toolDoc = { bytes: Buffer.from(raw.text, 'utf8'), file, line: raw.line, json: raw.json === true, refs: 0 };
            this.toolBytes += toolDoc.bytes.length;
          }
          toolDoc.refs++;
          indexed.doc = { held: toolDoc, prefix, warning: placeholder, source: source ?? undefined };
        }
        this.indexTool(tool.key, indexed, obj);
      }
      if (hold) {
        if (!heldDoc) {
          heldDoc = { bytes: Buffer.from(raw.text, 'utf8'), file, line: raw.line, json: raw.json === true, refs: 0 };
          this.heldBytes += heldDoc.bytes.length;
        }
        heldDoc.refs++;
        let list = this.held.get(ns);
        if (!list) this.held.set(detach(ns), (list = []));
        const keys = [...read!].sort();
        const id = keys.join('\n');
        let shared = this.keySets.get(id);
        if (!shared) this.keySets.set(id, (shared = keys));
        const h: HeldObject = { doc: heldDoc, namespace: ns, keys: shared, prefix, item, chunk };
        if (made.before.length) h.before = made.before;
        if (made.after.length) h.after = made.after;
        list.push(h);
      }
    }
  }

  /** The injection's denials and warnings on an object, with these namespace labels. */
  private injectionFound(obj: Record<string, any>, namespaceLabels: Record<string, string> | undefined): Found[] {
    const injection = checkInjection(obj, { config: this.ctx.config, namespace: this.ctx.namespace, namespaceLabels });
    // waypoint-mode says what the author chose, not a problem: given at admission, not in a pipeline's report
    return [...injection.violations, ...injection.warnings].filter((v) => v.rule !== 'waypoint-mode').map((v) => ({ v }));
  }

  /** Notes a Namespace's labels; the objects held for that namespace are checked again with them. */
  private noteNamespace(obj: Record<string, any>): void {
    if (obj.kind !== 'Namespace') return;
    this.namespaces.note(obj);
    const name: unknown = isObject(obj.metadata) ? obj.metadata.name : undefined;
    if (typeof name !== 'string') return;
    const list = this.held.get(name);
    const labels = this.namespaces.labels(name);
    if (!list || !labels) return;
    this.held.delete(name);
    for (const h of list) {
      const matters = h.keys.some((k) => (k === ANY_LABEL ? Object.keys(labels).length > 0 : labels[k] !== undefined));
      if (matters) this.recheck(h, labels);
      this.release(h);
    }
  }

  private release(h: HeldObject): void {
    if (--h.doc.refs === 0) this.heldBytes -= h.doc.bytes.length;
  }

  /** Makes a held object's injection findings again with its namespace's labels, in place of those it had. */
  private recheck(h: HeldObject, labels: Record<string, string>): void {
    const text = h.doc.bytes.toString('utf8');
    let pd: ParsedDocument;
    let inj: Finding[];
    try {
      // the same text as before: it parses, and its positions were found then
      pd = ParsedDocument.parse(text, h.doc.json);
      const v = pd.value as Record<string, any>;
      const obj = h.item < 0 ? v : (v.items as Record<string, any>[])[h.item]!;
      const source = sourceOf(text);
      inj = this.injectionFound(obj, labels).map((f) => this.finding(f, h.doc.file, h.doc.line, pd, h.prefix, source));
    } catch (err) {
      if (err instanceof ManifestParseError || err instanceof RangeError) return;
      throw err;
    }
    const chunk = this.shown([...(h.before ?? []), ...inj, ...(h.after ?? [])], h.namespace, h.doc.line, pd, h.prefix);
    h.chunk.length = 0;
    h.chunk.push(...chunk);
    this.flat = null;
  }

  /**
   * An object's findings as reported: in the order of their lines, as a reader goes through the file (stable: one
   * key's findings keep the order of the checks). In a namespace the webhook never sees, the findings only the
   * webhook would act on become one unwatched-namespace warning (at the object's kind:), and those the API server itself refuses in
   * any namespace (Finding.schema) stay as they are:
   *   - token-review-value (token-review-required where it stands for it) on a K8S_TOKEN_REVIEW in data that is a
   *     boolean, number, mapping or list (ConfigMap data holds strings: the API server cannot decode it);
   *   - malformed-object on a pod or pod template shape the API server refuses (inject.ts checkShape: labels or
   *     annotations not a mapping of strings (a null value excepted), annotations over 256 KiB, spec not a mapping,
   *     containers missing, empty or not a list, list items that are not mappings, a container or volume without a
   *     string name, serviceAccountName not a string, hostNetwork not a boolean).
   * Every other finding (the policy rules, the injection's denials and warnings) comes from the webhook only.
   */
  private shown(list: Finding[], ns: string, rawLine: number, pd: ParsedDocument, prefix: string): Finding[] {
    list.sort((a, b) => a.line - b.line || a.column - b.column);
    if (!list.length || !UNWATCHED_NAMESPACES.includes(ns)) return list;
    // stale-injection says the webhook no longer injects the template, which it never does there: not one of them
    list = list.filter((f) => f.rule !== 'stale-injection');
    if (!list.length) return list;
    const kept = list.filter((f) => f.schema);
    const folded = list.filter((f) => !f.schema);
    if (!folded.length) return kept;
    list = folded;
    const first = list[0]!;
    const at = pd.locate(prefix ? `${prefix}kind` : '');
    // an agent template's (lintParsed adds its place-holder), in inject's words; the rules of the other findings
    const agent = list.some((f) => f.rule === 'unwatched-namespace');
    const rules = [...new Set(list.filter((f) => f.rule !== 'unwatched-namespace').map((f) => f.rule))];
    const message = unwatchedNamespaceText(`${first.kind} ${ns}/${first.name}`, ns, agent, rules);
    const warning: Finding = {
      rule: 'unwatched-namespace',
      severity: 'warning',
      message,
      file: first.file,
      line: rawLine + at.line - 1,
      column: at.column,
      kind: first.kind,
      namespace: detach(ns),
      name: first.name,
      path: prefix.slice(0, -1),
    };
    if (first.source) warning.source = first.source;
    return kept.length ? [warning, ...kept].sort((a, b) => a.line - b.line || a.column - b.column) : [warning];
  }

  /** A finding as reported, at its key's position (document-relative in pd, the document at rawLine). */
  private finding({ v: viol, other, immutable }: Found, file: string, rawLine: number, pd: ParsedDocument, prefix: string, source: string | undefined): Finding {
    // a finding on a List's item as a whole is at `items.N` (at its kind:, as a document's is at its kind:)
    const path = viol.path ? prefix + viol.path : prefix.slice(0, -1);
    const at = pd.locate(viol.path ? path : prefix ? `${prefix}kind` : '');
    let message = viol.message;
    if (other) {
      const name = `${other.ref.kind}/${other.ref.name}`;
      const labelled = other.ref.agent ? `${name} (kagenti.io/agent=${other.ref.agent})` : name;
      const where = `${labelled} defined at ${other.file}:${other.line}`;
      message = message.includes(`agent ${labelled}`)
        ? message.replace(`agent ${labelled}`, `agent ${where}`)
        : `${message} The other agent: ${where}.`;
    }
    if (viol.rule === 'token-review-required' && this.ctx.issuer.classification === 'unknown' && this.ctx.issuerHint)
      message = message.includes(CONFIG_ISSUER_FIX)
        ? message.replace(CONFIG_ISSUER_FIX, `${this.ctx.issuerHint}.`)
        : `${message} ${this.ctx.issuerHint}.`;
    const finding: Finding = {
      rule: viol.rule,
      severity: viol.severity,
      message: Buffer.from(message, 'utf8').toString('utf8'),
      file,
      line: rawLine + at.line - 1,
      column: at.column,
      kind: detach(viol.kind),
      namespace: detach(viol.namespace),
      name: detach(viol.name),
      path: detach(path),
    };
    if (source) finding.source = detach(source);
    if (immutable) finding.immutable = true;
    if (viol.schema) finding.schema = true;
    return finding;
  }
}

/** Whether an object names its namespace (metadata.namespace, not empty). */
function hasNamespace(obj: Record<string, any>): boolean {
  return isObject(obj.metadata) && typeof obj.metadata.namespace === 'string' && obj.metadata.namespace !== '';
}

/** Line offset (0-based) of the first content line of a document's text: where `file:line` points for it. */
function firstLineOffset(text: string): number {
  let i = 0;
  let line = 0;
  const n = text.length;
  while (i < n) {
    const e0 = text.indexOf('\n', i);
    const e = e0 === -1 ? n : e0;
    let j = i;
    while (j < e && (text.charCodeAt(j) === 32 || text.charCodeAt(j) === 13 || text.charCodeAt(j) === 9)) j++;
    if (j < e && text.charCodeAt(j) !== 35) return line;
    if (e0 === -1) return line;
    i = e + 1;
    line++;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------
// The command

export const LINT_USAGE = `Usage: kagenti-webhook lint [flags] [PATH ...] [-]

Checks manifests (files, directories with *.yaml, *.yml, *.json; '-' or nothing for stdin) against the
webhook's policies (dedicated-service-account, unique-service-account, token-review-value,
token-review-required) and, on agent pods and pod templates, its injection denials (errors) and injection
warnings (warnings). The list of rules is in docs/lint.md. YAML is read with YAML 1.1 rules, as kubectl
reads it.

Flags:
      --issuer URL          the cluster's service-account issuer (classified like the webhook does)
      --external-issuer     the issuer is external (EKS, GKE, AKS, other OIDC): K8S_TOKEN_REVIEW must be "true"
      --internal-issuer     the issuer is the API server itself (kind, k3s, kubeadm)
      --cluster             read the issuer from the current kubeconfig context's API server
      --config FILE         the webhook's config file (ConfigMap names, rule actions, feature gates)
  -n, --namespace NS        namespace of objects without metadata.namespace (default "default"; with
                            --post-renderer, $HELM_NAMESPACE when set: the release's namespace). Without it,
                            such objects in files of different directories are not compared for
                            unique-service-account
      --exclude GLOB        in a directory, leave out the files and directories whose path relative to that
                            PATH argument, or whose name, matches GLOB (* ? [abc] within a name, ** across
                            directories; a trailing / matches directories only); repeatable. Directories whose
                            names start with '.' and node_modules are never searched; a PATH named on the
                            command line is always read. A GLOB that leaves nothing out gets a note on stderr
  -o, --format FORMAT       text (default), json, sarif or junit
      --strict              warnings count as failures
      --post-renderer       Helm post-renderer: stdin to stdout unchanged when it passes, else report on stderr
      --no-color            no colour in text output (colour is used only on a terminal)
  -h, --help                show this help

Exit codes: 0 no errors, 1 violations, 2 usage, read or parse errors (a file that is not a Kubernetes
object, a directory without YAML or JSON files; stdin with no documents is 0), 141 the reader of the output went
away (lint ... | head).
`;

const ISSUER_HINT = 'pass --external-issuer, --internal-issuer, --issuer URL or --cluster to lint (or set tokenReview.issuer in --config)';

/** The issuer from the flags, else from the config's tokenReview.issuer, else unknown. */
export async function resolveIssuer(
  flags: { issuer?: string; external?: boolean; internal?: boolean; cluster?: boolean },
  config: Config,
): Promise<IssuerInfo> {
  const { classifyIssuer } = await import('./issuer.ts');
  if (flags.external) return { classification: 'external' };
  if (flags.internal) return { classification: 'internal' };
  if (flags.issuer !== undefined) return classifyIssuer(flags.issuer);
  if (flags.cluster) return clusterIssuer();
  const setting = config.tokenReview.issuer;
  if (setting === 'external' || setting === 'internal') return { classification: setting };
  if (setting !== 'auto') return classifyIssuer(setting);
  return { classification: 'unknown' };
}

class LintUsageError extends Error {}

/** Reads the issuer from the current kubeconfig context: GET /.well-known/openid-configuration. */
export async function clusterIssuer(): Promise<IssuerInfo> {
  const { KubeConfig } = await import('./kube-client.ts');
  const { kubeGetJson } = await import('./cluster.ts');
  const { classifyIssuer } = await import('./issuer.ts');
  const kc = new KubeConfig();
  // Without any of these, loadFromDefault() falls back to http://localhost:8080, which is never what is meant.
  const home = process.env.HOME ?? process.env.USERPROFILE ?? '';
  if (!process.env.KUBECONFIG && !process.env.KUBERNETES_SERVICE_HOST && !(home && existsSync(join(home, '.kube', 'config'))))
    throw new LintUsageError('--cluster: no kubeconfig (set KUBECONFIG, or write ~/.kube/config), and not running in a cluster');
  try {
    kc.loadFromDefault();
  } catch (err) {
    throw new LintUsageError(`--cluster: cannot load the kubeconfig: ${(err as Error).message.split('\n')[0]}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new LintUsageError('--cluster: the kubeconfig has no current context with a cluster');
  let doc: any;
  try {
    doc = await kubeGetJson(kc, '/.well-known/openid-configuration', { maxBytes: 256 * 1024, timeoutMs: 10_000 });
  } catch (err) {
    throw new LintUsageError(`--cluster: GET ${cluster.server}/.well-known/openid-configuration failed: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isObject(doc) || typeof doc.issuer !== 'string' || doc.issuer === '')
    throw new LintUsageError(`--cluster: ${cluster.server}/.well-known/openid-configuration has no issuer`);
  return classifyIssuer(doc.issuer, typeof doc.jwks_uri === 'string' ? doc.jwks_uri : undefined, cluster.server);
}

const EXTENSIONS = /\.(ya?ml|json)$/i;

/**
 * Expands the PATH arguments: files as given, directories recursively (sorted; directories whose names start with
 * `.` and node_modules are not entered, and what --exclude matches is left out), '-' as stdin. A directory with no
 * file to read is an input problem.
 */
async function expandPaths(
  paths: string[],
  problems: InputProblem[],
  excludes: readonly ExcludeGlob[] = [],
  matched?: Set<ExcludeGlob>,
  walked?: { directory: boolean },
): Promise<string[]> {
  const out: string[] = [];
  /** `dir` is `rel` (`/`-separated, '' for the argument itself) under the argument */
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      problems.push({ file: dir, message: `cannot read directory: ${(err as Error).message}` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = join(dir, e.name);
      const relative = rel ? `${rel}/${e.name}` : e.name;
      if (excluded(relative, excludes, e.isDirectory(), matched)) continue;
      if (e.isDirectory()) {
        if (e.name.startsWith('.') || e.name === 'node_modules') continue;
        await walk(p, relative);
      } else if (e.isFile() && EXTENSIONS.test(e.name)) out.push(p);
      else if (e.isSymbolicLink() && EXTENSIONS.test(e.name)) {
        // kubectl apply -f DIR reads a linked file as the file; a link to a directory it cannot read.
        let target;
        try {
          target = await stat(p);
        } catch (err) {
          problems.push({ file: p, message: `cannot read: ${(err as Error).message}` });
          continue;
        }
        if (target.isFile()) out.push(p);
        else problems.push({ file: p, message: 'is a symbolic link to something that is not a file; kubectl apply -f cannot read it either' });
      }
    }
  };
  for (const p of paths) {
    if (p === '-') {
      out.push('-');
      continue;
    }
    let st;
    try {
      st = await stat(p);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      problems.push({ file: p, message: e.code === 'ENOENT' ? 'no such file or directory' : `cannot read: ${e.message}` });
      continue;
    }
    if (st.isDirectory()) {
      if (walked) walked.directory = true;
      const before = out.length;
      const problemsBefore = problems.length;
      await walk(p, '');
      // a directory that yields nothing would read as a pass: a wrong path, or everything excluded
      if (out.length === before && problems.length === problemsBefore)
        problems.push({ file: p, message: `no YAML or JSON files under ${p} (*.yaml, *.yml, *.json; directories starting with "." and node_modules are not searched${excludes.length ? ', nor what --exclude matches' : ''})` });
    } else out.push(p);
  }
  return out;
}

export { STDIN_NAME };

function problemLine(p: InputProblem): string {
  // file names and messages quote the input: escaped, so a control character in them cannot act on the terminal
  return `${printable(problemAt(p))}: error: ${printable(p.message)}\n`;
}

/** Collects a readable stream's chunks while passing them on (the post-renderer echoes the exact bytes). */
async function* tee(source: AsyncIterable<Buffer>, keep: Buffer[]): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    keep.push(b);
    yield b;
  }
}

function write(stream: NodeJS.WritableStream, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (data.length === 0) return resolve();
    stream.write(data, () => resolve());
  });
}

/** SARIF URIs are relative to the checkout on GitHub Actions (GITHUB_WORKSPACE), else to the working directory. */
function sarifBase(): SarifBase {
  return { cwd: process.cwd(), ...(process.env.GITHUB_WORKSPACE ? { workspace: process.env.GITHUB_WORKSPACE } : {}) };
}

export async function runLint(argv: string[]): Promise<number> {
  try {
    return await lintCommand(argv);
  } catch (err) {
    if (err instanceof LintUsageError || err instanceof ConfigError) {
      process.stderr.write(`kagenti-webhook lint: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`kagenti-webhook lint: ${(err as Error)?.message ?? String(err)}\n`);
    return 2;
  }
}

async function lintCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        issuer: { type: 'string' },
        'external-issuer': { type: 'boolean' },
        'internal-issuer': { type: 'boolean' },
        cluster: { type: 'boolean' },
        config: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        exclude: { type: 'string', multiple: true },
        format: { type: 'string', short: 'o' },
        strict: { type: 'boolean' },
        'post-renderer': { type: 'boolean' },
        'no-color': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    const e = err as { code?: string; message: string };
    const m = /'(-[^' ]+)/.exec(e.message);
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && m) throw new LintUsageError(`unknown flag ${m[1]} (see kagenti-webhook lint --help)`);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && m) {
      // node names a string flag as '-o, --format <value>': name the long form
      const flag = /--[a-z-]+/.exec(e.message)?.[0] ?? m[1]!.replace(/,$/, '');
      throw new LintUsageError(/does not take an argument/.test(e.message) ? `flag ${flag} takes no value` : `flag ${flag} needs a value`);
    }
    throw new LintUsageError(e.message.split('.')[0]);
  }
  const f = parsed.values;
  if (f.help) {
    process.stdout.write(LINT_USAGE);
    return 0;
  }
  const format = (f.format ?? 'text') as Format;
  if (!FORMATS.includes(format)) throw new LintUsageError(`--format must be one of ${FORMATS.join(', ')}, got ${JSON.stringify(f.format)}`);
  const issuerFlags = [f.issuer !== undefined, !!f['external-issuer'], !!f['internal-issuer'], !!f.cluster].filter(Boolean).length;
  if (issuerFlags > 1) throw new LintUsageError('pass at most one of --issuer, --external-issuer, --internal-issuer, --cluster');
  if (f.issuer !== undefined && !/^https:\/\/\S+$/.test(f.issuer))
    throw new LintUsageError(`--issuer must be the issuer URL (https://...), got ${JSON.stringify(f.issuer)}`);
  if (f.namespace !== undefined && !isDnsLabel(f.namespace))
    throw new LintUsageError(`--namespace must be a namespace name (at most 63 lowercase letters, digits and '-'), got ${JSON.stringify(f.namespace)}`);
  const postRenderer = !!f['post-renderer'];
  // As a post-renderer, objects without a namespace go to the release's: Helm 4 sets HELM_NAMESPACE for its plugins
  // (-n, else the kubeconfig context's), and Helm 3 passes on the one the user exported (it installs there too).
  const helmNamespace = process.env.HELM_NAMESPACE;
  if (postRenderer && f.namespace === undefined && helmNamespace) {
    if (!isDnsLabel(helmNamespace))
      throw new LintUsageError(`HELM_NAMESPACE must be a namespace name (at most 63 lowercase letters, digits and '-'), got ${JSON.stringify(helmNamespace)}`);
    f.namespace = helmNamespace;
  }
  const paths = parsed.positionals;
  if (postRenderer && paths.some((p) => p !== '-'))
    throw new LintUsageError('--post-renderer reads the rendered manifests on stdin; it takes no PATH');
  if (paths.filter((p) => p === '-').length > 1) throw new LintUsageError("stdin ('-') can be read only once");

  if (f.config === '') throw new LintUsageError('--config needs a file (it was given an empty value)');
  const config = loadConfig(f.config);
  const issuer = await resolveIssuer(
    { issuer: f.issuer, external: f['external-issuer'], internal: f['internal-issuer'], cluster: f.cluster },
    config,
  );
  // An issuer URL lint cannot place (only discovery on the cluster could) needs the kind said outright.
  const issuerHint = issuer.issuer
    ? `lint cannot tell from its URL whether ${issuer.issuer} is external (it knows EKS, GKE, AKS and kubernetes.default.svc): pass --external-issuer or --internal-issuer`
    : ISSUER_HINT;
  const linter = new Linter({ config, issuer, namespace: f.namespace, issuerHint });
  const strict = !!f.strict;

  if (postRenderer) {
    const kept: Buffer[] = [];
    await linter.lintStream(STDIN_NAME, tee(process.stdin as AsyncIterable<Buffer>, kept));
    const code = linter.exitCode(strict);
    for (const p of linter.problems) process.stderr.write(problemLine(p));
    if (linter.findings.length) {
      const color = format === 'text' && !f['no-color'] && !process.env.NO_COLOR && !!process.stderr.isTTY;
      process.stderr.write(formatReport(format, linter.report(strict), { color, sarif: sarifBase() }));
    }
    if (code === 0) await write(process.stdout, Buffer.concat(kept));
    return code;
  }

  const excludes: ExcludeGlob[] = [];
  for (const glob of f.exclude ?? []) {
    if (glob === '') throw new LintUsageError('--exclude needs a glob (it was given an empty value)');
    const g = compileExclude(glob);
    if (typeof g === 'string') throw new LintUsageError(`--exclude: ${g}`);
    excludes.push(g);
  }
  const matched = new Set<ExcludeGlob>();
  const walked = { directory: false };
  const inputs = await expandPaths(paths.length ? paths : ['-'], linter.problems, excludes, matched, walked);
  // a glob that left nothing out is most likely mistyped, or relative to something else than the PATH arguments
  const unmatched = excludes.filter((g) => !matched.has(g)).map((g) => JSON.stringify(g.glob));
  // (files named on the command line are always read: a glob only acts inside the directories given)
  if (unmatched.length && walked.directory)
    process.stderr.write(
      `kagenti-webhook lint: note: --exclude ${unmatched.join(', ')} matched no file or directory under the directory arguments ` +
        `(a glob matches the path relative to the argument, or the name)\n`,
    );
  // The Namespace documents of every file first, so that their labels count wherever they are in the input; a stream
  // (stdin, a pipe) is read once: its agents are held until the input is read, should a Namespace come after them.
  let regular = true;
  for (const file of inputs) {
    const st = file === '-' ? undefined : await stat(file).catch(() => undefined);
    if (st?.isFile()) await linter.noteNamespacesOf(createReadStream(file, { highWaterMark: 256 * 1024 }));
    else regular = false;
  }
  if (regular) linter.namespacesComplete();
  for (const file of inputs) {
    if (file === '-') await linter.lintStream(STDIN_NAME, process.stdin as AsyncIterable<Buffer>);
    else await linter.lintStream(file, createReadStream(file, { highWaterMark: 256 * 1024 }));
  }
  for (const p of linter.problems) process.stderr.write(problemLine(p));
  const color = format === 'text' && !f['no-color'] && !process.env.NO_COLOR && !!process.stdout.isTTY;
  await write(process.stdout, formatReport(format, linter.report(strict), { color, sarif: sarifBase() }));
  return linter.exitCode(strict);
}
