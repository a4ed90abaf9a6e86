// JSON Patch (RFC 6902) between the object we received and our mutated copy, via fast-json-patch's compare,
// so every field we do not model survives untouched.
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';

const { compare } = fastJsonPatch;

/** Arrays whose index-by-index diff is collapsed into one `replace` when that is shorter. */
const COLLAPSIBLE = /^(\/spec(?:\/template\/spec|\/jobTemplate\/spec\/template\/spec)?\/(?:containers|initContainers|volumes))(\/|$)/;

function escapeSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

function getAt(obj: unknown, pointer: string): unknown {
  let cur: any = obj;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = cur[seg];
  }
  return cur;
}

/**
 * The patch that turns `original` into `mutated`. Inserting sidecars at the front of a list makes an
 * index-wise diff rewrite every element after them; where that takes more operations than the list has
 * elements, the list is replaced whole with its mutated value (still taken from the mutated raw copy).
 */
export function createPatch(original: object, mutated: object): Operation[] {
  const ops = compare(original, mutated);
  if (ops.length < 4) return ops;
  const counts = new Map<string, number>();
  for (const op of ops) {
    const m = COLLAPSIBLE.exec(op.path);
    if (m && m[2] === '/') counts.set(m[1], (counts.get(m[1]) ?? 0) + 1);
  }
  const collapse = new Set<string>();
  for (const [root, n] of counts) {
    const after = getAt(mutated, root);
    const before = getAt(original, root);
    if (Array.isArray(after) && Array.isArray(before) && n > 2) collapse.add(root);
  }
  if (!collapse.size) return ops;
  const out: Operation[] = [];
  const emitted = new Set<string>();
  for (const op of ops) {
    const m = COLLAPSIBLE.exec(op.path);
    if (m && collapse.has(m[1])) {
      if (!emitted.has(m[1])) {
        emitted.add(m[1]);
        out.push({ op: 'replace', path: m[1], value: getAt(mutated, m[1]) });
      }
      continue;
    }
    out.push(op);
  }
  return out;
}

export { escapeSegment };
