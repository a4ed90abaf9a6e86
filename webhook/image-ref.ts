// Container image references, as the kubelet parses them (the distribution "reference" grammar):
//
//   reference  := name [ ":" tag ] [ "@" digest ]
//   name       := [ domain "/" ] path-component ( "/" path-component )*      (at most 255 characters)
//   domain     := host [ ":" port ]      host: DNS labels joined by "." (any case), or an IPv6 address in [ ]
//   path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*      separator: "." | "_" | "__" | "-"+
//   tag        := [\w][\w.-]{0,127}
//   digest     := "sha256:" 64, "sha384:" 96 or "sha512:" 128 lowercase hex digits (the algorithms the kubelet can verify)
//
// The API server refuses a pod whose image has leading or trailing white space; an image that does not follow the
// grammar otherwise (capitals in the path, a space) is refused by the kubelet (InvalidImageName), pod after pod.

const DOMAIN_LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;
const REFERENCE = new RegExp(`^(${NAME})(?::[\\w][\\w.-]{0,127})?(?:@(?:sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}))?$`);
const MAX_NAME = 255;

/** What is wrong with an image reference, and the fix when one can be given; undefined when it is valid. */
export interface ImageProblem {
  /** Why the text is not an image reference, after "it ..." ("has capital letters in its repository path ..."). */
  reason: string;
  /** The corrected reference, when the mistake is clear (trimmed, or its path in lowercase). */
  corrected?: string;
}

/** Whether `ref` is an image reference the kubelet accepts. */
export function isImageReference(ref: string): boolean {
  const m = REFERENCE.exec(ref);
  return m !== null && normalizedLength(m[1]!) <= MAX_NAME && !HEX_ID.test(ref);
}

/** 64 hex digits alone: an image ID to the kubelet's parser, which refuses it as a reference. */
const HEX_ID = /^[a-f0-9]{64}$/;

/**
 * The length of a repository name as the kubelet checks it: after it names Docker Hub for a name without a registry
 * host (`docker.io/`, and `library/` for a name of one component).
 */
function normalizedLength(name: string): number {
  if (pathStart(name) > 0) return name.length;
  return name.length + 'docker.io/'.length + (name.includes('/') ? 0 : 'library/'.length);
}

/**
 * The repository path's offset in `ref`: after the registry host, which the kubelet recognises as a first component
 * with a '.' or ':', `localhost`, or capital letters, followed by '/'.
 */
function pathStart(ref: string): number {
  const slash = ref.indexOf('/');
  if (slash < 0) return 0;
  const first = ref.slice(0, slash);
  return /[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase() ? slash + 1 : 0;
}

/** Why `ref` is not an image reference (and its correction when clear), or undefined when it is one. */
export function imageReferenceProblem(ref: string): ImageProblem | undefined {
  if (isImageReference(ref)) return undefined;
  const trimmed = ref.trim();
  if (trimmed !== ref) {
    const reason = /\n$/.test(ref)
      ? 'ends with a line break (a folded ">" or literal "|" YAML block keeps one: put the image on the line of its key, or write ">-")'
      : 'has white space before or after it';
    return { reason, corrected: isImageReference(trimmed) ? trimmed : undefined };
  }
  if (/\s/.test(ref)) return { reason: 'contains white space' };
  if (HEX_ID.test(ref)) return { reason: 'is 64 hexadecimal digits, which the kubelet takes for an image ID, not a reference' };
  // a first component with capitals but no '.' or ':' (not localhost) is read as a registry host: most likely an
  // organisation written in capitals, so the whole name is lowered, not only what follows it
  const first = ref.indexOf('/') < 0 ? '' : ref.slice(0, ref.indexOf('/'));
  if (first && !/[.:]/.test(first) && first !== 'localhost' && first !== first.toLowerCase()) {
    const end = ref.search(/[:@]/);
    const name = end < 0 ? ref : ref.slice(0, end);
    const corrected = name.toLowerCase() + ref.slice(name.length);
    if (isImageReference(corrected))
      return { reason: `has capital letters in its repository path (${JSON.stringify(name)}; the kubelet would read ${JSON.stringify(first)} as a registry host)`, corrected };
  }
  const start = pathStart(ref);
  const end = ref.slice(start).search(/[:@]/);
  const path = end < 0 ? ref.slice(start) : ref.slice(start, start + end);
  if (path !== path.toLowerCase()) {
    const corrected = ref.slice(0, start) + path.toLowerCase() + ref.slice(start + path.length);
    if (isImageReference(corrected))
      return { reason: `has capital letters in its repository path (${JSON.stringify(path)}): only the registry host may have them`, corrected };
  }
  const name = /^(.*?)(?::[^/:@]*)?(?:@.*)?$/.exec(ref)![1]!;
  if (REFERENCE.test(ref) || name.length > MAX_NAME)
    return { reason: `has a repository name longer than ${MAX_NAME} characters${pathStart(name) > 0 ? '' : ' (counting the docker.io/ the kubelet puts before a name without a registry host)'}` };
  return {
    reason:
      'does not follow the image reference grammar: [registry[:port]/]path[:tag][@sha256:<64 hex digits>, or sha384, sha512], the path of lowercase letters and digits separated by "/", ".", "_", "__" or "-", the tag at most 128 letters, digits, "_", "." and "-"',
  };
}

/**
 * The imagePullPolicy the API server gives a container that sets none (SetDefaults_Container): Always when the
 * image's tag is `latest`, or when it has neither a tag nor a digest (the kubelet then pulls `latest`);
 * IfNotPresent otherwise. A `:` before the last `/` is a registry port (`localhost:5000/x` has no tag).
 */
export function defaultPullPolicy(image: string): 'Always' | 'IfNotPresent' {
  const at = image.indexOf('@');
  const name = at === -1 ? image : image.slice(0, at);
  const colon = name.lastIndexOf(':');
  const tag = colon > name.lastIndexOf('/') ? name.slice(colon + 1) : '';
  return tag === 'latest' || (tag === '' && at === -1) ? 'Always' : 'IfNotPresent';
}
