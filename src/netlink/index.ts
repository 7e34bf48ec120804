// weft's rtnetlink library: start with Rtnetlink.open(); see rtnl.ts.
export { Rtnetlink, type AddressFilter, type NeighbourFilter, type RouteFilter } from './rtnl.ts';
export { requestOffThread, type OffThreadOptions } from './off-thread.ts';
export { NetlinkSocket, type NetlinkRequest, type NetlinkSocketOptions, type NetlinkTransport } from './socket.ts';
export { NetlinkError, NetlinkBatchError, isExists, isNotFound, isNetlinkError, type BatchFailure } from './errors.ts';
export { RTPROT_BOOT, RTPROT_KERNEL, RT_TABLE_MAIN } from './constants.ts';
export * from './link.ts';
export * from './addr.ts';
export * from './route.ts';
export * from './neigh.ts';
export { parseIp, parseCidr, formatIp, parseMac, formatMac, type IpFamily, type IpAddress, type Cidr } from './ip.ts';
