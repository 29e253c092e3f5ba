/* virtio-entropy driver (virtio 1.2 §5.4). */
#ifndef SDK_VIRTIO_RNG_H
#define SDK_VIRTIO_RNG_H

#include "virtio.h"

struct virtio_rng {
    struct virtio_dev dev;
    struct virtq vq;
    uint64_t requests;
};

bool virtio_rng_open(struct virtio_rng *rng);
/* Fill buf with len bytes of entropy, asking as often as needed; returns len, or less on error. */
size_t virtio_rng_read(struct virtio_rng *rng, void *buf, size_t len);

#endif
