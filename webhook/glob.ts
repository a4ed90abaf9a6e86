// Shell-style globs for `lint --exclude`: `*` any characters but `/`, `**` any characters including `/` (`**/` also
// none, so `**/x` matches `x`), `?` one character but `/`, `[abc]`, `[a-z]` and `[!abc]` one character of (or not
// of) a set; every other character, and one after `\`, stands for itself. Pure.

/** A glob as an anchored regular expression, or an error message for one that is malformed. */
export function globToRegExp(glob: string): RegExp | string {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++;
        if (glob[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) return `unclosed [ in ${JSON.stringify(glob)}`;
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else if (c === '\\' && i + 1 < glob.length) {
      i++;
      re += glob[i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'su');
}

/** Whether a path (relative, `/`-separated) or its base name matches one of the globs. */
export function excluded(relative: string, globs: readonly RegExp[]): boolean {
  if (!globs.length) return false;
  const base = relative.slice(relative.lastIndexOf('/') + 1);
  return globs.some((g) => g.test(relative) || g.test(base));
}
