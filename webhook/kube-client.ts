// The parts of @kubernetes/client-node the webhook uses, from one module.
//
// Loading the package whole costs a running webhook about 85 MB of RSS: its entry point (and KubeConfig's module)
// imports every generated API and model, 1,000 modules and 24 MB of source V8 keeps in the heap. `npm run build`
// therefore replaces this module's compiled form, dist/kube-client.js, with an esbuild bundle of these three exports
// (tools/bundle-kube-client.ts): the same client-node code, without the generated APIs nothing here calls. Run from
// source (the tests, `node webhook/...`), this module loads the package as it is.
export { KubeConfig, ListWatch, Watch } from '@kubernetes/client-node';
export type { KubernetesObject } from '@kubernetes/client-node';
