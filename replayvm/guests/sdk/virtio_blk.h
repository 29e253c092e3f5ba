/* virtio-blk driver (virtio 1.2 §5.2): synchronous, one request at a time. */
#ifndef SDK_VIRTIO_BLK_H
#define SDK_VIRTIO_BLK_H

#include "virtio.h"

#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_S_DRIVER_ERROR 0xff /* no answer: the device needs a reset */

#define VIRTIO_BLK_SECTOR_SIZE 512
#define VIRTIO_BLK_ID_BYTES 20

struct virtio_blk {
    struct virtio_dev dev;
    struct virtq vq;
    uint64_t capacity; /* in 512-byte sectors */
    bool read_only;
};

/* Find, initialise and start the first virtio-blk device. */
bool virtio_blk_open(struct virtio_blk *blk);
/* Read or write len bytes (a multiple of 512) at sector; returns a VIRTIO_BLK_S_* status. */
int virtio_blk_read(struct virtio_blk *blk, uint64_t sector, void *buf, uint32_t len);
int virtio_blk_write(struct virtio_blk *blk, uint64_t sector, const void *buf, uint32_t len);
int virtio_blk_flush(struct virtio_blk *blk);
/* The device's ID string, NUL-terminated (at most 20 characters). */
int virtio_blk_get_id(struct virtio_blk *blk, char id[VIRTIO_BLK_ID_BYTES + 1]);

#endif
