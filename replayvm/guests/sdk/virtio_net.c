/*
 * virtio-net (§5.1.6): every buffer starts with a 12-byte virtio_net_hdr.
 * Transmit sends header and frame as two readable descriptors; receive
 * keeps the receive queue full of 1536-byte writable buffers.
 */
#include "virtio_net.h"

#include "sdk.h"

#define RECEIVEQ 0
#define TRANSMITQ 1

static const uint8_t tx_header[VIRTIO_NET_HDR_SIZE]; /* no checksum or GSO offload */

static void post_rx(struct virtio_net *net, uint8_t *buf)
{
    struct virtq_buf b = {buf, VIRTIO_NET_BUFFER_SIZE};
    int head = virtq_add(&net->rx, &b, 0, 1);

    if (head >= 0)
        net->rx_by_head[head] = buf;
}

bool virtio_net_open(struct virtio_net *net)
{
    memset(net, 0, sizeof(*net));
    if (!virtio_find(VIRTIO_ID_NET, &net->dev))
        return false;
    if (!virtio_init(&net->dev, VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
                                    VIRTIO_BIT(VIRTIO_F_EVENT_IDX)))
        return false;
    if (!virtq_init(&net->rx, &net->dev, RECEIVEQ, VIRTIO_NET_RX_BUFFERS) ||
        !virtq_init(&net->tx, &net->dev, TRANSMITQ, 16))
        return false;
    for (unsigned i = 0; i < 6; i++)
        net->mac[i] = (net->dev.features & VIRTIO_BIT(VIRTIO_NET_F_MAC)) ? virtio_config8(&net->dev, i) : 0;
    net->link_up = !(net->dev.features & VIRTIO_BIT(VIRTIO_NET_F_STATUS)) ||
                   (virtio_config16(&net->dev, 6) & VIRTIO_NET_S_LINK_UP);
    net->rx_buffers = memmap_reserve(VIRTIO_NET_RX_BUFFERS * VIRTIO_NET_BUFFER_SIZE, 64);
    for (unsigned i = 0; i < net->rx.size; i++)
        post_rx(net, net->rx_buffers + i * VIRTIO_NET_BUFFER_SIZE);
    virtio_driver_ok(&net->dev);
    virtq_kick(&net->rx);
    return true;
}

bool virtio_net_send(struct virtio_net *net, const void *frame, size_t len)
{
    struct virtq_buf bufs[2] = {{tx_header, VIRTIO_NET_HDR_SIZE}, {frame, (uint32_t)len}};

    if (len > ETH_FRAME_MAX || virtq_transact(&net->tx, bufs, 2, 0) < 0)
        return false;
    net->tx_frames++;
    return true;
}

int virtio_net_recv(struct virtio_net *net, void *buf, size_t max)
{
    uint32_t len;
    int head;

    while ((head = virtq_get_used(&net->rx, &len)) < 0) {
        if (!virtq_wait(&net->rx))
            return -1;
    }
    if (len < VIRTIO_NET_HDR_SIZE)
        len = VIRTIO_NET_HDR_SIZE;
    len -= VIRTIO_NET_HDR_SIZE;
    if (len > max)
        len = (uint32_t)max;
    memcpy(buf, net->rx_by_head[head] + VIRTIO_NET_HDR_SIZE, len);
    post_rx(net, net->rx_by_head[head]);
    virtq_kick(&net->rx);
    net->rx_frames++;
    return (int)len;
}
