// The parts of @kubernetes/client-node the webhook uses, from one module.
//
// Loading the package whole adds about 85 MB of RSS to a bare Node process: its entry point (and KubeConfig's module)
// imports every generated API and model, 1,000 modules and 24 MB of source V8 keeps in the heap, and undici for its
// fetch. A webhook with cluster state idled about 25 MB lower with a plain bundle of these exports, and about 34 MB
// lower again without undici and the modules nothing here uses (BENCHMARKS.md, twenty-second and twenty-third rounds). `npm run build`
// therefore replaces this module's compiled form, dist/kube-client.js, with an esbuild bundle of these exports
// (tools/bundle-kube-client.ts): the same client-node code, with the packages it imports, without the generated APIs
// nothing here calls and without undici (its Watch's fetch: webhook/kube-http.ts watches over node:http(s) instead),
// importing nothing from node_modules at run time. Run from
// source (the tests, `node webhook/...`), this module loads the package as it is.
export { KubeConfig, ListWatch } from '@kubernetes/client-node';
export type { KubernetesObject } from '@kubernetes/client-node';
