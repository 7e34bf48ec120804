// The mesh transport's public surface: dial, accept, listen, derive a PSK. Everything else in
// this folder is an implementation detail the rest of the mesh must not reach into.
export {
  MESH_PROTOCOL, CHANNEL_DEFAULTS, MAX_PSKS, dialChannel, acceptChannel, frameOverhead,
  type Channel, type ChannelOptions, type ChannelStats,
} from './channel.ts';
export { listenMesh, LISTEN_DEFAULTS, type ListenOptions, type MeshListener } from './listen.ts';
export { derivePsk, PSK_SALT_PREFIX } from './psk.ts';
export { MeshHandshakeError, MESH_ERROR_REASONS, type MeshErrorReason } from './errors.ts';
export { type PeerIdentity } from './hello.ts';
export { PRE_AUTH_MAX_FRAME_BYTES } from './frame.ts';
