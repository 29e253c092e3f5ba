/* virtio-entropy: each request is one device-writable buffer (§5.4.6). */
#include "virtio_rng.h"

#include "sdk.h"

bool virtio_rng_open(struct virtio_rng *rng)
{
    memset(rng, 0, sizeof(*rng));
    if (!virtio_find(VIRTIO_ID_ENTROPY, &rng->dev) || !virtio_init(&rng->dev, 0))
        return false;
    if (!virtq_init(&rng->vq, &rng->dev, 0, 8))
        return false;
    virtio_driver_ok(&rng->dev);
    return true;
}

size_t virtio_rng_read(struct virtio_rng *rng, void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        struct virtq_buf b = {(uint8_t *)buf + done, (uint32_t)(len - done)};
        int64_t got = virtq_transact(&rng->vq, &b, 0, 1);

        rng->requests++;
        if (got <= 0)
            break;
        done += (size_t)got;
    }
    return done;
}
