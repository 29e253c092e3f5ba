/*
 * virtio-blk (virtio 1.2 §5.2.6): each request is a chain of the 16-byte
 * header (device-readable), the data (readable for OUT, writable for IN
 * and GET_ID) and the status byte (writable).
 */
#include "virtio_blk.h"

#include "sdk.h"

struct blk_req_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static struct blk_req_header header;
static volatile uint8_t status;

bool virtio_blk_open(struct virtio_blk *blk)
{
    memset(blk, 0, sizeof(*blk));
    if (!virtio_find(VIRTIO_ID_BLOCK, &blk->dev))
        return false;
    if (!virtio_init(&blk->dev, VIRTIO_BIT(VIRTIO_BLK_F_RO) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
                                    VIRTIO_BIT(VIRTIO_F_EVENT_IDX)))
        return false;
    if (!virtq_init(&blk->vq, &blk->dev, 0, 16))
        return false;
    blk->capacity = virtio_config64(&blk->dev, 0);
    blk->read_only = (blk->dev.features & VIRTIO_BIT(VIRTIO_BLK_F_RO)) != 0;
    virtio_driver_ok(&blk->dev);
    return true;
}

static int request(struct virtio_blk *blk, uint32_t type, uint64_t sector, void *data, uint32_t len,
                   bool device_writes)
{
    struct virtq_buf bufs[3];
    unsigned out = 1, in = 1, n = 0;

    header.type = type;
    header.reserved = 0;
    header.sector = sector;
    status = VIRTIO_BLK_S_DRIVER_ERROR;
    bufs[n++] = (struct virtq_buf){&header, sizeof(header)};
    if (len) {
        bufs[n++] = (struct virtq_buf){data, len};
        if (device_writes)
            in++;
        else
            out++;
    }
    bufs[n++] = (struct virtq_buf){(const void *)&status, 1};
    if (virtq_transact(&blk->vq, bufs, out, in) < 0)
        return VIRTIO_BLK_S_DRIVER_ERROR;
    return status;
}

int virtio_blk_read(struct virtio_blk *blk, uint64_t sector, void *buf, uint32_t len)
{
    return request(blk, VIRTIO_BLK_T_IN, sector, buf, len, true);
}

int virtio_blk_write(struct virtio_blk *blk, uint64_t sector, const void *buf, uint32_t len)
{
    return request(blk, VIRTIO_BLK_T_OUT, sector, (void *)buf, len, false);
}

int virtio_blk_flush(struct virtio_blk *blk)
{
    return request(blk, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
}

int virtio_blk_get_id(struct virtio_blk *blk, char id[VIRTIO_BLK_ID_BYTES + 1])
{
    int st;

    memset(id, 0, VIRTIO_BLK_ID_BYTES + 1);
    st = request(blk, VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES, true);
    id[VIRTIO_BLK_ID_BYTES] = '\0';
    return st;
}
