/* virtio-console driver (virtio 1.2 §5.3): port 0 only, no multiport. */
#ifndef SDK_VIRTIO_CONSOLE_H
#define SDK_VIRTIO_CONSOLE_H

#include "virtio.h"

#define VIRTIO_CONSOLE_RX_BUFFERS 8
#define VIRTIO_CONSOLE_RX_BUFFER_SIZE 256
#define VIRTIO_CONSOLE_TX_CHUNK 4096

struct virtio_console {
    struct virtio_dev dev;
    struct virtq rx, tx;
    uint8_t *rx_buffers;             /* VIRTIO_CONSOLE_RX_BUFFERS of RX_BUFFER_SIZE */
    uint8_t *rx_by_head[256];        /* receive buffer of each descriptor head */
    const uint8_t *rx_data;          /* bytes received, not yet read */
    uint32_t rx_left;
    int rx_head;                     /* buffer being read, -1 if none */
    uint64_t tx_bytes, tx_buffers;
};

bool virtio_console_open(struct virtio_console *con);
/* Send len bytes in chunks of up to TX_CHUNK, as many per notification as the
 * transmit queue holds; returns when the device has consumed them all. */
bool virtio_console_write(struct virtio_console *con, const void *buf, size_t len);
/* Next received byte, idling until one arrives; -1 if the device broke. */
int virtio_console_getc(struct virtio_console *con);

#endif
