/* virtio-net driver (virtio 1.2 §5.1): one receive and one transmit queue, no offloads. */
#ifndef SDK_VIRTIO_NET_H
#define SDK_VIRTIO_NET_H

#include "virtio.h"

#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_S_LINK_UP 1

#define VIRTIO_NET_HDR_SIZE 12 /* struct virtio_net_hdr with VIRTIO_F_VERSION_1 */
#define VIRTIO_NET_RX_BUFFERS 16
#define VIRTIO_NET_BUFFER_SIZE 1536 /* >= 12 + 1514: §5.1.6.3.1 asks for 1526 */
#define ETH_FRAME_MAX 1514

struct virtio_net {
    struct virtio_dev dev;
    struct virtq rx, tx;
    uint8_t mac[6];
    bool link_up;
    uint8_t *rx_buffers;
    uint8_t *rx_by_head[256];
    uint64_t tx_frames, rx_frames;
};

bool virtio_net_open(struct virtio_net *net);
/* Send one Ethernet frame (no FCS); returns when the device took it. */
bool virtio_net_send(struct virtio_net *net, const void *frame, size_t len);
/* Copy the next received frame into buf (truncated to max); idles until one
 * arrives. Returns its length, or -1 if the device broke. */
int virtio_net_recv(struct virtio_net *net, void *buf, size_t max);

#endif
