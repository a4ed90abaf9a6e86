// Shell-style globs for `lint --exclude`: `*` any characters but `/`, `**` any characters including `/` (`**/` also
// none, so `**/x` matches `x`), `?` one character but `/`, `[abc]`, `[a-z]` and `[!abc]` one character of (or not
// of) a set (a `]` right after `[` or `[!` is one of the set, as in the shell; `[!...]` never matches `/`); every
// other character, and one after `\`, stands for itself. A glob that ends in `/` matches directories only. Pure.

/** A compiled --exclude glob. */
export interface ExcludeGlob {
  /** the glob as given */
  glob: string;
  re: RegExp;
  /** the glob ended in `/`: it matches directories only */
  dirOnly: boolean;
}

/** Escapes a character for a RegExp outside a class. */
function lit(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Escapes a character for a RegExp class. */
function classLit(c: string): string {
  return c.replace(/[\\\]^\-[]/g, '\\$&');
}

/** A glob (without a trailing `/`) as an anchored regular expression, or an error message for one that is malformed. */
export function globToRegExp(glob: string): RegExp | string {
  let re = '';
  const chars = Array.from(glob); // code points: a range or `?` takes a whole character
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '*') {
      if (chars[i + 1] === '*') {
        i++;
        if (chars[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      let j = i + 1;
      const negate = chars[j] === '!';
      if (negate) j++;
      // the set's members: a `]` first is one of them, the next `]` ends the set
      const members: string[] = [];
      let closed = false;
      for (let first = true; j < chars.length; j++, first = false) {
        if (chars[j] === ']' && !first) {
          closed = true;
          break;
        }
        members.push(chars[j]!);
      }
      if (!closed) return `unclosed [ in ${JSON.stringify(glob)}`;
      let set = '';
      for (let k = 0; k < members.length; k++) {
        const a = members[k]!;
        // a-z: a range; a `-` first or last is itself
        if (members[k + 1] === '-' && k + 2 < members.length) {
          const b = members[k + 2]!;
          if (a.codePointAt(0)! > b.codePointAt(0)!) return `the range ${a}-${b} in ${JSON.stringify(glob)} is out of order (write it ${b}-${a})`;
          set += `${classLit(a)}-${classLit(b)}`;
          k += 2;
        } else set += classLit(a);
      }
      re += negate ? `[^/${set}]` : `[${set}]`;
      i = j;
    } else if (c === '\\' && i + 1 < chars.length) {
      i++;
      re += lit(chars[i]!);
    } else re += lit(c);
  }
  try {
    return new RegExp(`^${re}$`, 'su');
  } catch (err) {
    return `${JSON.stringify(glob)} is not a glob lint can read: ${(err as Error).message}`;
  }
}

/**
 * An --exclude glob compiled, or an error message: a trailing `/` (`charts/`) makes it match directories only (of
 * that path or name); a glob of slashes alone names nothing.
 */
export function compileExclude(glob: string): ExcludeGlob | string {
  const bare = glob.replace(/\/+$/, '');
  if (bare === '') return `${JSON.stringify(glob)} names no file or directory`;
  const re = globToRegExp(bare);
  if (typeof re === 'string') return re;
  return { glob, re, dirOnly: bare !== glob };
}

/**
 * The globs a path (relative, `/`-separated) or its base name matches, of a directory or of a file; each is added to
 * `matched` when given (lint notes the globs that matched nothing in the run).
 */
export function excluded(relative: string, globs: readonly ExcludeGlob[], isDirectory = false, matched?: Set<ExcludeGlob>): boolean {
  if (!globs.length) return false;
  const base = relative.slice(relative.lastIndexOf('/') + 1);
  let hit = false;
  for (const g of globs) {
    if (g.dirOnly && !isDirectory) continue;
    if (g.re.test(relative) || g.re.test(base)) {
      hit = true;
      if (!matched) return true;
      matched.add(g);
    }
  }
  return hit;
}
