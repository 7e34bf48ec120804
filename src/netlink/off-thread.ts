// One netlink request answered on a thread-pool thread, for the few requests the kernel is
// slow to answer. Deleting a veth waits until the device is fully unregistered (about 20 ms):
// on the CNI server's single JavaScript thread, 100 concurrent DELs would wait one after
// another; off the thread their waits overlap, as separate plugin processes' do.
import { WeftError } from '../errors.ts';
import { native } from '../native/native.ts';
import { decodeNlError, NlWriter, parseMessages } from './codec.ts';
import { NETLINK_ROUTE, NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR } from './constants.ts';
import { NetlinkError } from './errors.ts';
import type { NetlinkRequest } from './socket.ts';

export interface OffThreadOptions {
  /** Run it inside this network namespace (/run/netns/x, /proc/PID/ns/net). */
  netnsPath?: string;
  timeoutMs?: number;
}

/**
 * Sends req with its own socket on a worker thread and waits for the ACK. Throws NetlinkError
 * (with .notFound / .exists) when the kernel refuses it, and an error with code ENOENT when
 * the namespace does not exist.
 */
export async function requestOffThread(req: NetlinkRequest, options: OffThreadOptions = {}): Promise<void> {
  const w = new NlWriter(1024);
  const start = w.beginMessage(req.type, NLM_F_REQUEST | NLM_F_ACK | (req.flags ?? 0), 1);
  req.write(w);
  w.endMessage(start);
  const reply = await native().nlRequestAsync(NETLINK_ROUTE, options.netnsPath ?? null, w.bytes(), options.timeoutMs ?? 5000);
  for (const msg of parseMessages(reply)) {
    if (msg.type !== NLMSG_ERROR || msg.seq !== 1) continue;
    const answer = decodeNlError(msg);
    if (answer.errno !== 0) throw new NetlinkError(req.what, answer);
    return;
  }
  throw new WeftError('WEFT_NETLINK', `${req.what}: the kernel's first reply was not its acknowledgement`);
}
