/*
 * virtio-console, single port (§5.3.6): receiveq (0) is kept full of
 * device-writable buffers; transmitq (1) gets the caller's bytes in place.
 */
#include "virtio_console.h"

#include "sdk.h"

#define RECEIVEQ 0
#define TRANSMITQ 1

static void post_rx(struct virtio_console *con, uint8_t *buf)
{
    struct virtq_buf b = {buf, VIRTIO_CONSOLE_RX_BUFFER_SIZE};
    int head = virtq_add(&con->rx, &b, 0, 1);

    if (head >= 0)
        con->rx_by_head[head] = buf;
}

bool virtio_console_open(struct virtio_console *con)
{
    memset(con, 0, sizeof(*con));
    con->rx_head = -1;
    if (!virtio_find(VIRTIO_ID_CONSOLE, &con->dev) || !virtio_init(&con->dev, VIRTIO_BIT(VIRTIO_F_EVENT_IDX)))
        return false;
    if (!virtq_init(&con->rx, &con->dev, RECEIVEQ, VIRTIO_CONSOLE_RX_BUFFERS) ||
        !virtq_init(&con->tx, &con->dev, TRANSMITQ, 64))
        return false;
    con->rx_buffers = memmap_reserve(VIRTIO_CONSOLE_RX_BUFFERS * VIRTIO_CONSOLE_RX_BUFFER_SIZE, 64);
    for (unsigned i = 0; i < con->rx.size; i++)
        post_rx(con, con->rx_buffers + i * VIRTIO_CONSOLE_RX_BUFFER_SIZE);
    virtio_driver_ok(&con->dev);
    virtq_kick(&con->rx);
    return true;
}

bool virtio_console_write(struct virtio_console *con, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        unsigned queued = 0;
        uint32_t used_len;

        while (len && con->tx.num_free) {
            struct virtq_buf b = {p, (uint32_t)(len < VIRTIO_CONSOLE_TX_CHUNK ? len : VIRTIO_CONSOLE_TX_CHUNK)};

            virtq_add(&con->tx, &b, 1, 0);
            p += b.len;
            len -= b.len;
            con->tx_bytes += b.len;
            con->tx_buffers++;
            queued++;
        }
        virtq_kick(&con->tx);
        while (queued) {
            if (!virtq_has_used(&con->tx) && !virtq_wait(&con->tx))
                return false;
            while (queued && virtq_get_used(&con->tx, &used_len) >= 0)
                queued--;
        }
    }
    return true;
}

int virtio_console_getc(struct virtio_console *con)
{
    while (!con->rx_left) {
        uint32_t len;
        int head;

        if (con->rx_head >= 0) { /* give the drained buffer back */
            post_rx(con, con->rx_by_head[con->rx_head]);
            virtq_kick(&con->rx);
            con->rx_head = -1;
        }
        if (!virtq_has_used(&con->rx) && !virtq_wait(&con->rx))
            return -1;
        head = virtq_get_used(&con->rx, &len);
        if (head < 0)
            continue;
        con->rx_head = head;
        con->rx_data = con->rx_by_head[head];
        con->rx_left = len < VIRTIO_CONSOLE_RX_BUFFER_SIZE ? len : VIRTIO_CONSOLE_RX_BUFFER_SIZE;
    }
    con->rx_left--;
    return *con->rx_data++;
}
