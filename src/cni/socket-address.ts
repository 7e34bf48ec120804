// Where the CNI server listens by default. "@name" is an abstract unix socket: it belongs to
// the network namespace it is bound in and leaves no file behind. The C front end has the
// same default (src/cni/shim/weft-cni.c).
export const DEFAULT_CNI_SOCKET = '@weft-cni';
