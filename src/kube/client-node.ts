// The parts of @kubernetes/client-node weft uses, as one module that connectKube imports
// lazily. Naming them (instead of importing the whole package) lets the bundler drop the
// rest of the generated API (all other groups and models, about two thirds of its code),
// and keeps the package out of processes that never connect (etcd and plain mesh modes).
export {
  KubeConfig, CoreV1Api, CoordinationV1Api, Watch, createConfiguration, ServerConfiguration,
  setHeaderOptions, PatchStrategy, V1MicroTime, ApiException,
} from '@kubernetes/client-node';
