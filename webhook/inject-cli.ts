// `kagenti-webhook inject`: offline injection for GitOps previews, through the same core as /mutate.
import { readFileSync } from 'node:fs';
import { Lexer, LineCounter, isMap, isScalar, parseAllDocuments, visit } from 'yaml';
import type { Document, Scalar } from 'yaml';
import { aliasProblem, findValue, goYamlInteger, INT64_MAX, INT64_MIN, jsonNumberPastFloat64, KUBECTL_YAML, stringifyKeys } from './kubectl-yaml.ts';
import type { KubeObject } from './admission.ts';
import { objectRef } from './admission.ts';
import type { Config } from './config.ts';
import { ConfigError, loadConfig } from './config.ts';
import { isDnsLabel } from './identity.ts';
import { denialText, injectTemplate, isObject, jsonEqual } from './inject.ts';
import { goYamlScanProblem } from './go-yaml-scan.ts';
import { listItemProblem } from './kubectl-list.ts';
import { decodeText, InputError, jsonParseError, kubectlStreamMode, NOT_PRINTABLE, splitDocuments, yamlErrorText } from './manifest-stream.ts';
import type { RawDocument } from './manifest-stream.ts';
import { asCreated, checkUncheckedTemplate, injectableTemplate, ownField, RenderedNamespaces, templateWorkload, UNWATCHED_NAMESPACES, unwatchedNamespaceText } from './rules.ts';
import { parseFlags, UsageError } from './usage.ts';
import { getPodTemplate, podSpecFieldPath } from './workloads.ts';

export const INJECT_USAGE = `Usage: kagenti-webhook inject [-f FILE|- ...] [--config FILE] [--namespace NS]

Injects AuthBridge, spiffe-helper and the SPIFFE CSI volume into the agent pod templates of the
manifests read from FILE (or stdin), as the webhook would in their pods, and writes YAML to stdout.
Reads Pod, ReplicationController (v1), Deployment, StatefulSet, DaemonSet, ReplicaSet (apps), Job, CronJob
(batch) and List, in multi-document streams; other documents pass through unchanged and in order (another
group's object of one of these kinds too). An agent template in another kind (an Argo Rollout) gets an
unchecked-template warning: its pods are injected at admission, but it was not checked or injected here.
An agent in kube-system, kube-public, kube-node-lease or kagenti-system, which the webhook's registrations
leave out, passes through unchanged too, with a warning: the webhook injects and denies nothing there. A template is checked as its controller
makes the pods, as lint checks it: a StatefulSet's volumeClaimTemplates are volumes of each pod (a claim
named like an injected volume is denied), though not written into the template. A Namespace earlier in
the input stands for the cluster's, as in lint: its labels set the AuthBridge mode
(kagenti.io/authbridge-mode) of the objects after it in that namespace and give the Pod Security
warning (a Namespace after them does not count). Warnings go to stderr.

Exit codes: 0 written; 1 a document is denied (messages on stderr, nothing on stdout); 2 usage or
unreadable input.

Flags:
  -f, --filename FILE   input file, or - for stdin (default stdin); repeatable: the files are read in
                        order as one stream, as kubectl apply -f a -f b reads them (JSON streams and
                        YAML cannot be mixed)
  --config FILE         the same config file as serve
  -n, --namespace NS    namespace for objects without metadata.namespace, once (default: default;
                        $HELM_NAMESPACE is not read: as a Helm post-renderer, pass the release's
                        namespace, the same name as helm -n: --post-renderer-args -n
                        --post-renderer-args NAME, not "$HELM_NAMESPACE", which your shell expands)
  -h, --help            show this help
`;

export interface InjectStreamResult {
  output: string;
  /** the input was a stream of JSON objects, and so is the output */
  json: boolean;
  denials: string[];
  warnings: string[];
  injected: number;
}

/**
 * Injects into one object (a workload, a Pod or a List of them). Returns the new object or null when unchanged.
 * A Namespace's labels are kept in `namespaces` for the objects after it.
 */
function injectObject(obj: unknown, cfg: Config, defaultNs: string, namespaces: RenderedNamespaces, out: InjectStreamResult): KubeObject | null {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return null;
  const o = obj as KubeObject;
  if (typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)) {
    let changed = false;
    const items = o.items.map((item: unknown) => {
      const r = injectObject(item, cfg, defaultNs, namespaces, out);
      if (r) changed = true;
      return r ?? item;
    });
    return changed ? { ...o, items } : null;
  }
  namespaces.note(o);
  const tpl = getPodTemplate(o);
  if (!tpl) {
    // an agent template in a kind inject does not know (a Rollout, another group's Deployment): written as it is
    const unchecked = checkUncheckedTemplate(o, { config: cfg, namespace: defaultNs, tool: 'inject' });
    if (unchecked) out.warnings.push(unchecked.message);
    return null;
  }
  const namespace = (typeof o.metadata?.namespace === 'string' && o.metadata.namespace) || defaultNs;
  const ref = objectRef(o.kind, o, namespace);
  // The webhook's registrations never send an object in these namespaces: it injects and denies nothing there, so
  // neither does inject (the document is written back as it was), and it says so for an agent, as lint does.
  if (UNWATCHED_NAMESPACES.includes(namespace)) {
    if (injectableTemplate(o, cfg)) out.warnings.push(unwatchedNamespaceText(ref, namespace, true));
    return null;
  }
  // Checked and injected as the controller creates the pods (a StatefulSet's claims are volumes of each pod), as
  // lint and /validate check the template and /mutate sees each pod; a denial names the field of the manifest.
  // The namespace's labels (authbridge mode, Pod Security level) are those of a Namespace earlier in the input, as
  // lint reads them; /mutate reads the cluster's.
  const created = asCreated(o, tpl.template);
  const owner = o.kind === 'Pod' ? templateWorkload(o, cfg, namespace) : undefined;
  const r = injectTemplate(created, cfg, { namespace, namespaceLabels: namespaces.labels(namespace), ref, owner }, podSpecFieldPath(o.kind));
  if (r.outcome === 'skip') return null;
  if (r.outcome === 'deny') {
    const all = created === tpl.template ? r.all : r.all.map((d) => ({ ...d, message: ownField(o, tpl.template, created, d, tpl.path).message }));
    out.denials.push(...denialText({ all, unlisted: r.unlisted }).split('\n'));
    return null;
  }
  out.warnings.push(...r.warnings);
  const template = created === tpl.template ? r.template : volumesAsWritten(tpl.template, created, r.template);
  if (jsonEqual(template, tpl.template)) return null; // already injected: leave the document as written
  if (!tpl.path.length) {
    out.injected++;
    return template;
  }
  const copy = structuredClone(o);
  let cur = copy;
  for (const k of tpl.path.slice(0, -1)) cur = cur[k];
  cur[tpl.path[tpl.path.length - 1]] = template;
  out.injected++;
  return copy;
}

/**
 * An injected template with its volumes as the manifest has them. The injection ran on the pod as its controller
 * creates it (`created`, asCreated: a StatefulSet's claims as persistentVolumeClaim volumes, in place of template
 * volumes of the same name); the output is the template, which the controller turns into pods again. So the claims'
 * volumes come out, the template volumes they stand in for go back in their places (unless the injection took the
 * claim's volume out as a piece of an earlier injection: then that name's volume goes, as it would from the
 * template), and the injected volumes follow the template's own, as they do on any template.
 */
function volumesAsWritten(template: KubeObject, created: KubeObject, injected: KubeObject): KubeObject {
  const own: unknown[] = Array.isArray(template.spec.volumes) ? template.spec.volumes : [];
  const before: unknown[] = created.spec.volumes;
  const after: unknown[] = Array.isArray(injected.spec.volumes) ? injected.spec.volumes : [];
  // asCreated and the injection keep the volumes they do not add or take out as the same objects
  const ownSet = new Set(own);
  const beforeSet = new Set(before);
  const kept = new Set(after);
  const claimsKept = new Set(before.filter((v) => !ownSet.has(v) && kept.has(v)).map((v) => (v as KubeObject).name));
  const volumes = [
    ...own.filter((v) => kept.has(v) || (!beforeSet.has(v) && isObject(v) && claimsKept.has(v.name))),
    ...after.filter((v) => !beforeSet.has(v)),
  ];
  const spec = { ...injected.spec };
  if (volumes.length) spec.volumes = volumes;
  else delete spec.volumes;
  return { ...injected, spec };
}

/**
 * Whether inject would write this integer back as other digits, where kubectl reads the exact one: past 2^53 a
 * JavaScript number holds it inexactly, or prints it rounded (2^60 as 1152921504606847000, another integer to
 * kubectl). Past int64, kubectl's objects hold a float64 as JavaScript does.
 */
function rewrittenInexactly(node: Scalar): boolean {
  if (typeof node.value !== 'number' || Number.isSafeInteger(node.value) || typeof node.source !== 'string') return false;
  const exact = goYamlInteger(node.source);
  return exact !== undefined && exact >= INT64_MIN && exact <= INT64_MAX && String(exact) !== String(node.value);
}

/**
 * Injects into every eligible document of a YAML/JSON stream (YAML 1.1, as kubectl reads it). Documents it does
 * not change are written as they were, byte for byte (comments, quoting, number formats); injected ones are
 * written anew from their values, with the comments that stood before them.
 */
export function injectStream(text: string, cfg: Config, defaultNs = 'default', source = '<stdin>', namespaces = new RenderedNamespaces()): InjectStreamResult {
  const json = jsonStreamAsYaml(text, source);
  const out: InjectStreamResult = { output: '', json: json !== null, denials: [], warnings: [], injected: 0 };
  // The documents inject leaves alone are written back from the input as it was (`input`); the parser reads `text`,
  // which differs only where kubectl's line rule and YAML's disagree on a document separator (see yamlSeparators).
  const input = text;
  let at = (p: number) => p;
  let ignored: { end: number; text: string }[] = [];
  if (json) text = json.text;
  else ({ text, at, ignored } = yamlSeparators(text, source));
  const lineOf = (l: number) => (json ? json.line(l) : l);
  const lc = new LineCounter();
  // (logLevel: a key that is a mapping or a sequence is refused below, not warned about by toJS on stderr)
  const docs = parseAllDocuments(text, { ...KUBECTL_YAML, prettyErrors: true, lineCounter: lc, logLevel: 'error' }) as Document[] | { errors: unknown[] };
  if (!Array.isArray(docs)) throw new UsageError(`${source}: not a YAML stream`);
  /**
   * The text after a rewritten document's `...` that kubectl never reads, as it was: never injected, never given a
   * `---` (which would have kubectl read it).
   */
  const unread = (i: number) => {
    const from = docs[i]!.range?.[0] ?? 0;
    const to = i + 1 < docs.length ? (docs[i + 1]!.range?.[0] ?? text.length) : text.length;
    return ignored
      .filter((g) => g.end > from && g.end <= to)
      .map((g) => (g.text.endsWith('\n') ? g.text : `${g.text}\n`))
      .join('');
  };
  // Each document's own text runs from where it starts to where the next one starts. With directives (%YAML) in
  // the stream, that text and a rewritten neighbour could disagree about them: then every document is rewritten.
  const asWritten = !/^%/m.test(text);
  const parts: string[] = [];
  /**
   * A document inject writes anew must not hold a raw U+0085, U+2028 or U+2029 that kubectl reads other than the
   * yaml package does: kubectl takes each for a line break, the yaml package for a character, which the output
   * carries, escaped, to kubectl. They agree only on U+2028 and U+2029 inside a quoted value with no space or
   * line break beside it (go-yaml keeps such a break as the character; it drops the spaces around it, and folds
   * U+0085 into a space); anywhere else (plain or block text, keys, comments) kubectl reads another value or none.
   */
  const refuseRawLineBreaks = (i: number) => {
    const from = i > 0 ? (docs[i]!.range?.[0] ?? 0) : 0;
    const to = i + 1 < docs.length ? (docs[i + 1]!.range?.[0] ?? text.length) : text.length;
    const own = text.slice(from, to);
    if (!GO_LINE_BREAKS.test(own)) return;
    const tokens = [...new Lexer().lex(own)];
    let offset = from;
    tokens.forEach((tok, t) => {
      if (tok === '\x1f' || tok === '\x02' || tok === '\x18') return; // the lexer's marks, not text
      const quoted = (tok[0] === '"' || tok[0] === "'") && tokens[t - 1] !== '\x1f';
      /** Whether the quoted token is a key: the next token but blanks is `:`. */
      const isKey = () => {
        let n = t + 1;
        while (n < tokens.length && /^[ \t]*$/.test(tokens[n]!)) n++;
        return tokens[n] === ':';
      };
      for (const m of tok.matchAll(/[\u0085\u2028\u2029]/g)) {
        const j = m.index;
        const c = m[0];
        const beside = /[ \t\r\n\u0085\u2028\u2029]/;
        // escaped only by an odd run of backslashes, and only in double quotes (in single quotes `\` is a character)
        let slashes = 0;
        while (tok[j - 1 - slashes] === '\\') slashes++;
        const escaped = tok[0] === '"' && slashes % 2 === 1;
        const alike = quoted && c !== '\u0085' && !beside.test(tok[j - 1] ?? '') && !escaped && !beside.test(tok[j + 1] ?? '') && !isKey();
        if (alike) continue;
        const at = lc.linePos(offset + j);
        throw new UsageError(
          `${source}:${lineOf(at.line)}:${at.col}: a raw ${GO_LINE_BREAK_NAMES[c]} in a document inject rewrites: kubectl reads it as a line break, inject as a character, so kubectl would read the output differently from this input; write it as ${GO_LINE_BREAK_ESCAPES[c]} inside double quotes, or remove it. Nothing was written`,
        );
      }
      offset += tok.length;
    });
  };
  docs.forEach((doc, i) => {
    if (doc.errors.length) {
      const e = doc.errors[0];
      const pos = e.linePos?.[0];
      throw new UsageError(`${source}${pos ? `:${lineOf(pos.line)}:${pos.col}` : ''}: ${yamlErrorText(e)}`);
    }
    // what kubectl's YAML reader refuses and the parser reads (tabs where a token starts, anchor names, escapes)
    if (!json) {
      const from = i > 0 ? (doc.range?.[0] ?? 0) : 0;
      const to = i + 1 < docs.length ? (docs[i + 1]!.range?.[0] ?? text.length) : text.length;
      const scan = goYamlScanProblem(text.slice(from, to));
      if (scan) {
        const at = lc.linePos(from + scan.offset);
        throw new UsageError(`${source}:${lineOf(at.line)}:${at.col}: ${scan.message}`);
      }
    }
    // An empty document (only comments, as `helm template` writes them for an empty template) injects nothing and is
    // written back as it is, as any document inject does not change.
    const empty = doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null);
    if (!empty && !isMap(doc.contents)) throw new UsageError(`${source}: a document is not a mapping with apiVersion and kind`);
    // a JSON number past float64's range: YAML reads a string, kubectl's JSON decoder refuses the file
    const huge = json ? jsonNumberPastFloat64(doc) : undefined;
    if (huge) {
      const at = lc.linePos(huge.node.range?.[0] ?? 0);
      throw new UsageError(`${source}:${lineOf(at.line)}:${at.col}: ${huge.message}. Nothing was written`);
    }
    // Keys as kubectl reads them (`1.5e10` is "1.5e+10" to kubectl, 15000000000 to JavaScript).
    const badKey = stringifyKeys(doc);
    // aliases as kubectl limits them (as lint reads them): an anchor containing itself or an alias bomb is refused
    // before anything is expanded, and then any number of uses is fine
    const alias = aliasProblem(doc);
    if (alias) {
      const at = alias.node.range?.[0];
      const pos = at === undefined ? undefined : lc.linePos(at);
      throw new UsageError(`${source}${pos ? `:${lineOf(pos.line)}:${pos.col}` : ''}: not valid for kubectl: ${alias.message}`);
    }
    let obj: unknown;
    try {
      obj = doc.toJS({ maxAliasCount: -1 });
    } catch (err) {
      throw new UsageError(`${source}: ${(err as Error).message.split('\n')[0]}`);
    }
    // a list in a List: kubectl refuses the file
    if (isObject(obj) && typeof obj.kind === 'string' && obj.kind.endsWith('List') && Array.isArray(obj.items)) {
      obj.items.forEach((item: unknown, k: number) => {
        const nested = listItemProblem(obj.kind, k, item);
        if (!nested) return;
        const node = doc.getIn(['items', k], true);
        const key = isMap(node) ? node.items.find((p) => isScalar(p.key) && p.key.value === 'items')?.key : undefined;
        const at = (key as Scalar | undefined)?.range?.[0];
        const pos = at === undefined ? undefined : lc.linePos(at);
        throw new UsageError(`${source}${pos ? `:${lineOf(pos.line)}:${pos.col}` : ''}: ${nested}`);
      });
    }
    const injected = injectObject(obj, cfg, defaultNs, namespaces, out);
    if (!injected) {
      const start = doc.range?.[0];
      const end = i + 1 < docs.length ? docs[i + 1]!.range?.[0] : text.length;
      if (json) {
        // a JSON stream is written back as one: each object kubectl reads as it read the input
        parts.push(`${json.docs[i]!.text}\n`);
        return;
      }
      if (asWritten && start !== undefined && end !== undefined) {
        // the first document's text includes what comes before it (comments, not a byte-order mark); it gets a
        // `---` unless it has one
        const own = input.slice(i > 0 ? at(start) : input.charCodeAt(0) === 0xfeff ? 1 : 0, at(end));
        const withEnd = own.endsWith('\n') ? own : `${own}\n`;
        parts.push(input.startsWith('---', at(start)) ? withEnd : `---\n${withEnd}`);
      } else if (!empty) {
        // (with directives in the stream, an empty document is dropped: written anew it would hold them only)
        refuseRawLineBreaks(i);
        parts.push(marked(written(doc)), unread(i));
      }
      return;
    }
    if (badKey) {
      const at = lc.linePos(badKey.node.range?.[0] ?? 0);
      throw new UsageError(
        `${source}:${lineOf(at.line)}:${at.col}: ${badKey.why}, which kubectl cannot read (it makes every key a string and has none for this one); write the key as a string, quoted if it looks like null or a number. Nothing was written`,
      );
    }
    const bad = findValue(doc, rewrittenInexactly);
    if (bad) {
      const at = lc.linePos(bad.range?.[0] ?? 0);
      throw new UsageError(
        `${source}:${lineOf(at.line)}:${at.col}: ${bad.source} is an integer past 2^53, which inject cannot write back exactly (it would become ${String(bad.value)}; kubectl reads ${goYamlInteger(bad.source!)}). Nothing was written`,
      );
    }
    if (json) {
      parts.push(`${JSON.stringify(injected, null, 2)}\n`);
      return;
    }
    refuseRawLineBreaks(i);
    // Keep the comments that stood before the object (e.g. Helm's `# Source:` line). After a `---` the parser
    // gives them to the object; at the top of a file without one, to its first key, which is written anew.
    const firstKey = (doc.contents as { items: { key: unknown }[] }).items[0]?.key as { commentBefore?: string | null } | null | undefined;
    const comment = [(doc.contents as { commentBefore?: string | null }).commentBefore, firstKey?.commentBefore].filter((c) => c).join('\n');
    // Injected pieces are shared objects (rendered once per plan): write each in full, never as a YAML alias.
    const node = doc.createNode(injected, { aliasDuplicateObjects: false }) as NonNullable<typeof doc.contents>;
    if (comment) (node as { commentBefore?: string | null }).commentBefore = comment;
    doc.contents = node;
    parts.push(marked(written(doc)), unread(i));
  });
  out.output = parts.join('');
  return out;
}

/**
 * A stream that starts with `{` (in its first 4096 bytes: kubectlStreamMode) is a stream of JSON objects, as kubectl reads it (`jq -c '.items[]'`): the same
 * objects as YAML documents for the parser (`---` and the object on the lines after it), with a map from their
 * lines back to the input's, and the objects' own text, which the output keeps. Null for any other stream.
 */
function jsonStreamAsYaml(text: string, source: string): { text: string; line: (yamlLine: number) => number; docs: RawDocument[] } | null {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (kubectlStreamMode(body) !== 'json') return null;
  let docs;
  try {
    docs = splitDocuments(body);
  } catch (err) {
    if (err instanceof InputError) throw new UsageError(`${source}${err.line ? `:${err.line}:${err.column ?? 1}` : ''}: ${err.message}`);
    throw err;
  }
  const parts: string[] = [];
  const origin: number[] = [0]; // origin[yaml line] = input line (1-based both)
  for (const d of docs) {
    // JSON to kubectl, never YAML: what JSON.parse refuses (a trailing comma, a comment) kubectl refuses
    try {
      JSON.parse(d.text);
    } catch (err) {
      if (err instanceof RangeError) throw err;
      const e = jsonParseError(d.text, err);
      throw new UsageError(`${source}:${d.line + e.line - 1}:${e.column}: ${e.message}`);
    }
    parts.push('---\n', d.text, '\n');
    origin.push(d.line);
    const lines = d.text.split('\n').length;
    for (let k = 0; k < lines; k++) origin.push(d.line + k);
  }
  return { text: parts.join(''), line: (l) => origin[l] ?? l, docs };
}

/**
 * A YAML stream split as kubectl splits it, for the parser. kubectl's reader (apimachinery's YAMLReader) ends a
 * document at any line that starts with `---` followed by nothing but spaces or a comment, and refuses the file
 * where other text follows (`--- {...}`) or where a `---#...` line has no document before it; YAML itself wants a
 * space after `---`, and reads `---#x` as content. So the same refusals as lint's (exit 2, the line named), and
 * each `---#` separator gets a space after its `---` for the parser. kubectl then reads only the first YAML document
 * of each piece: the text after a `...` line (document end) up to the next `---` line it never reads, not even to
 * refuse it; the parser gets blank lines in its place (the same line numbers), and `ignored` keeps it, with the
 * parsed offset where it ends, to be written back as it was. `at` takes an offset of the parsed text back to the
 * input's (the output keeps the input's bytes); the end of an ignored piece maps to after it.
 */
function yamlSeparators(text: string, source: string): { text: string; at: (p: number) => number; ignored: { end: number; text: string }[] } {
  try {
    splitDocuments(text);
  } catch (err) {
    if (err instanceof InputError) throw new UsageError(`${source}${err.line ? `:${err.line}:${err.column ?? 1}` : ''}: ${err.message}`);
    throw err;
  }
  const ignored: { end: number; text: string }[] = [];
  if (!/^(?:---#|\.\.\.(?:[ \t\r\n]|$))/m.test(text)) return { text, at: (p) => p, ignored };
  /** from each parsed offset on (ascending), input offset = parsed offset + shift */
  const shifts: { from: number; shift: number }[] = [];
  const parsed: string[] = [];
  let length = 0; // of the parsed text so far
  let shift = 0;
  let skipFrom = -1; // input offset where the ignored text began, while in it
  const endSkip = (to: number) => {
    const piece = text.slice(skipFrom, to);
    const blank = piece.replace(/[^\n]+/g, '');
    parsed.push(blank);
    length += blank.length;
    shift += piece.length - blank.length;
    shifts.push({ from: length, shift });
    ignored.push({ end: length, text: piece });
    skipFrom = -1;
  };
  for (let i = 0; i < text.length; ) {
    const nl = text.indexOf('\n', i);
    const end = nl === -1 ? text.length : nl + 1;
    const line = text.slice(i, end);
    // (splitDocuments refused any other text after a line's leading ---)
    const separator = line.startsWith('---');
    if (skipFrom >= 0) {
      if (!separator) {
        i = end;
        continue;
      }
      endSkip(i);
    }
    if (line.startsWith('---#')) {
      parsed.push('--- ', line.slice(3));
      shift -= 1;
      shifts.push({ from: length + 4, shift });
      length += line.length + 1;
    } else {
      parsed.push(line);
      length += line.length;
    }
    if (/^\.\.\.(?:[ \t\r\n]|$)/.test(line)) skipFrom = end;
    i = end;
  }
  if (skipFrom >= 0 && skipFrom < text.length) endSkip(text.length);
  return {
    text: parsed.join(''),
    at: (p) => {
      // the last shift that starts at or before p
      let lo = 0;
      let hi = shifts.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (shifts[mid]!.from <= p) lo = mid + 1;
        else hi = mid;
      }
      return p + (lo ? shifts[lo - 1]!.shift : 0);
    },
    ignored,
  };
}

/** Characters go-yaml v2 (kubectl) reads as line breaks, which YAML 1.2 and the yaml package do not. */
const GO_LINE_BREAKS = /[\u0085\u2028\u2029]/;
const GO_LINE_BREAK_ESCAPES: Record<string, string> = { '\u0085': '\\N', '\u2028': '\\L', '\u2029': '\\P' };
const GO_LINE_BREAK_NAMES: Record<string, string> = { '\u0085': 'U+0085 (NEXT LINE)', '\u2028': 'U+2028 (LINE SEPARATOR)', '\u2029': 'U+2029 (PARAGRAPH SEPARATOR)' };

// NOT_PRINTABLE (manifest-stream.ts): characters kubectl's reader refuses anywhere in a YAML file, even in quotes.
// splitDocuments refuses a YAML input holding one raw; a string still holds one from an escape ("\x7f") or from a
// JSON stream (kubectl's JSON decoder takes them), and only an escape carries it to kubectl.
/** GO_LINE_BREAKS and NOT_PRINTABLE together: what a rewritten double-quoted scalar carries only as an escape. */
const ESCAPED_IN_OUTPUT = /[\u0085\u2028\u2029\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]/g;

/** The double-quoted escape of a character kubectl must not read raw: \N, \L, \P, else \xNN or \uNNNN. */
function escapeFor(c: string): string {
  const named = GO_LINE_BREAK_ESCAPES[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * A document written anew, as kubectl reads it back. kubectl's reader (go-yaml v2, YAML 1.1) takes U+0085, U+2028
 * and U+2029 for line breaks, and refuses the whole file for a character outside YAML's printable set (DEL, C1
 * controls, U+FFFE, U+FFFF), all of which the yaml package writes raw, even in double quotes: a string holding one
 * is written double-quoted (key or value) and the character as its escape (\N, \L, \P, \xNN, \uNNNN), which go-yaml
 * reads back as the character.
 */
function written(doc: Document): string {
  let found = false;
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'string' && (GO_LINE_BREAKS.test(node.value) || NOT_PRINTABLE.test(node.value))) {
        node.type = 'QUOTE_DOUBLE';
        found = true;
      }
    },
  });
  const text = doc.toString({ lineWidth: 0 });
  if (!found) return text;
  // Only inside double-quoted scalars (a comment keeps what it had). A double-quoted token is one that starts
  // with `"` and does not follow the lexer's mark for plain and block scalar text.
  let out = '';
  let prev = '';
  for (const tok of new Lexer().lex(text)) {
    if (tok === '\x1f' || tok === '\x02' || tok === '\x18') {
      // the lexer's marks (scalar, document, flow end) are not text
      prev = tok;
      continue;
    }
    out += tok.startsWith('"') && prev !== '\x1f' ? tok.replace(ESCAPED_IN_OUTPUT, escapeFor) : tok;
    prev = tok;
  }
  return out;
}

/**
 * A rewritten document with its start marker. Comments above the document's own `---` (the top of a file) are
 * written there, above it: another `---` before them would make them a comment-only document of their own, and
 * a second run would write the stream otherwise.
 */
function marked(p: string): string {
  return /^(?:[ \t]*(?:#[^\n]*)?\n)*---(?:[ \t\n]|$)/.test(p) ? p : `---\n${p}`;
}

export async function runInject(argv: string[]): Promise<number> {
  const values = parseFlags('inject', argv, {
    filename: { type: 'string', short: 'f', multiple: true },
    config: { type: 'string' },
    namespace: { type: 'string', short: 'n', multiple: true },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(INJECT_USAGE);
    return 0;
  }
  const namespaces = (values.namespace as string[] | undefined) ?? [];
  // one namespace for the objects without one: a second -n would silently win over the first
  if (namespaces.length > 1)
    throw new UsageError(`--namespace given ${namespaces.length} times (${namespaces.map((n) => JSON.stringify(n)).join(', ')}): objects without metadata.namespace go to one namespace; pass it once (see kagenti-webhook inject --help)`);
  let namespace = namespaces[0];
  // as lint -n: the namespace goes into the SPIFFE ID (spiffe://<domain>/ns/<namespace>/sa/<sa>)
  // -n "" is what a post-renderer line gets from a "$HELM_NAMESPACE" the shell expanded while it was not exported
  if (namespace === '')
    throw new UsageError(
      `--namespace is empty: objects without metadata.namespace need a namespace name. As a Helm post-renderer, pass the release's namespace, the same name as helm -n (--post-renderer-args -n --post-renderer-args NAME): a "$HELM_NAMESPACE" there is expanded by your shell before Helm runs, empty when it is not exported (see kagenti-webhook inject --help)`,
    );
  if (namespace !== undefined && !isDnsLabel(namespace))
    throw new UsageError(`--namespace must be a namespace name (at most 63 lowercase letters, digits and '-'), got ${JSON.stringify(namespace)} (see kagenti-webhook inject --help)`);
  // HELM_NAMESPACE is not read (unlike lint --post-renderer, which runs only under Helm): users export it for Helm,
  // and a plain inject in that shell would bake the release's namespace into SPIFFE IDs without saying so. Where
  // inject runs as a Helm post-renderer, the docs pass -n with the same literal namespace as helm -n (a
  // "$HELM_NAMESPACE" on that command line is the shell's, expanded before Helm runs: empty, or a stale export).
  let cfg: Config;
  try {
    cfg = loadConfig(values.config as string | undefined);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`invalid config: ${err.message}`);
    throw err;
  }
  // Several -f are read in order as one stream, as kubectl apply -f a -f b reads them: each file's documents are its
  // own (messages name the file), and a Namespace in one counts for the files after it.
  const files = (values.filename as string[] | undefined) ?? ['-'];
  if (files.filter((f) => f === '-').length > 1) throw new UsageError("stdin ('-') can be read only once (see kagenti-webhook inject --help)");
  const rendered = new RenderedNamespaces();
  const outputs: { source: string; json: boolean; output: string }[] = [];
  const warnings: string[] = [];
  const denials: string[] = [];
  for (const file of files) {
    const source = file === '-' ? '<stdin>' : file;
    let bytes: Buffer;
    try {
      bytes = file === '-' ? readFileSync(0) : readFileSync(file);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new UsageError(`cannot read ${file === '-' ? 'stdin' : file}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.message}`);
    }
    // decoded as lint and kubectl read it: UTF-8 (a BOM dropped) or UTF-16 with its BOM (PowerShell 5's `>`); other
    // bytes are refused, never replaced (the documents inject leaves alone are written back as they were)
    let text: string;
    try {
      text = decodeText(bytes);
    } catch (err) {
      if (err instanceof InputError) throw new UsageError(`${source}: ${err.message}`);
      throw err;
    }
    if (text.includes('\u0000')) throw new UsageError(`${source}: binary data, not YAML or JSON`);
    const result = injectStream(text, cfg, namespace ?? 'default', source, rendered);
    warnings.push(...result.warnings);
    denials.push(...result.denials);
    if (result.output) outputs.push({ source, json: result.json, output: result.output });
  }
  // The output is one stream: JSON objects one after another, or YAML documents. A JSON stream's objects are written
  // back as they were, which a YAML stream cannot carry as it is.
  const json = outputs.find((o) => o.json);
  const yaml = outputs.find((o) => !o.json);
  if (json && yaml)
    throw new UsageError(`${json.source} is a stream of JSON objects and ${yaml.source} YAML: inject writes one stream of one kind; run inject on each of them separately, or convert one (see kagenti-webhook inject --help)`);
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  if (denials.length) {
    for (const d of denials) process.stderr.write(`${d}\n`);
    return 1;
  }
  process.stdout.write(outputs.map((o) => o.output).join(''));
  return 0;
}
