/*
 * virtio over MMIO, driver side (virtio 1.2 §4.2 transport, §2.7 split
 * virtqueues, §3.1 initialisation).
 *
 * Discovery: the devices the kernel command line announces with
 * "virtio_mmio.device=<size>@<base>:<irq>" (Linux's syntax, which
 * ReplayVM and QEMU microvm both use), else a probe of ReplayVM's slots
 * (4 KiB at 0xd0000000 + 0x1000*i, IRQs 5 6 7 9 10 11).  Only version 2
 * (non-legacy) devices are used.
 *
 * Completion: interrupt driven through the 8259 ("sti; hlt" until the
 * used ring moves), or polled with the "virtio_poll" cmdline word.
 * Buffers are identity mapped, so a pointer is its guest-physical address.
 */
#ifndef SDK_VIRTIO_H
#define SDK_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Table 4.1, MMIO device register layout (§4.2.2). */
#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */
#define VIRTIO_MMIO_INT_VRING 0x1
#define VIRTIO_MMIO_INT_CONFIG 0x2

/* Device status (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Device IDs (§5). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_ENTROPY 4

/* Reserved feature bits (§6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_BIT(n) (1ull << (n))

/* Split virtqueue layout (§2.7.5, §2.7.6, §2.7.8). */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[]; /* then le16 used_event */
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[]; /* then le16 avail_event */
};

#define VIRTIO_MAX_DEVICES 32

struct virtio_dev {
    uintptr_t base;        /* guest-physical base of the register window */
    unsigned irq;          /* ISA IRQ through the 8259 */
    uint32_t device_id;
    uint32_t version;      /* 2; 1 would be a legacy device (not driven) */
    uint64_t offered;      /* device features */
    uint64_t features;     /* negotiated */
    volatile uint64_t interrupts;
    volatile bool broken;  /* DEVICE_NEEDS_RESET seen */
};

struct virtq {
    struct virtio_dev *dev;
    unsigned index;
    uint16_t size;
    bool event_idx;
    struct virtq_desc *desc;
    volatile struct virtq_avail *avail;
    volatile struct virtq_used *used;
    uint16_t free_head;
    uint16_t num_free;
    uint16_t avail_idx;   /* next avail->idx */
    uint16_t kicked_idx;  /* avail->idx at the last notification decision */
    uint16_t last_used;   /* used elements consumed */
    uint64_t notifications;
};

/* One buffer of a chain: device-readable (out) or device-writable (in). */
struct virtq_buf {
    const void *addr;
    uint32_t len;
};

/* Every version-2 device the command line announces (or the probe finds). */
unsigned virtio_discover(struct virtio_dev *devs, unsigned max);
/* The first version-2 device with this ID; false if there is none. */
bool virtio_find(uint32_t device_id, struct virtio_dev *dev);
/* Where devices came from: "cmdline" or "probe". */
const char *virtio_discovery_source(void);
/* Completion is polled (cmdline word "virtio_poll") instead of interrupt driven. */
bool virtio_polled(void);

/* §3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, negotiate VERSION_1 plus
 * what is wanted and offered, FEATURES_OK.  False if refused. */
bool virtio_init(struct virtio_dev *dev, uint64_t wanted);
/* §4.2.3.2: set up queue index with at most size entries (rounded down to
 * a power of 2 within QueueNumMax). */
bool virtq_init(struct virtq *vq, struct virtio_dev *dev, unsigned index, uint16_t size);
/* §3.1.1 step 8; also routes the device's IRQ unless polling. */
void virtio_driver_ok(struct virtio_dev *dev);
uint32_t virtio_status(const struct virtio_dev *dev);

/* Device configuration space (§4.2.2, with ConfigGeneration, §2.5.1). */
uint8_t virtio_config8(const struct virtio_dev *dev, unsigned offset);
uint16_t virtio_config16(const struct virtio_dev *dev, unsigned offset);
uint32_t virtio_config32(const struct virtio_dev *dev, unsigned offset);
uint64_t virtio_config64(const struct virtio_dev *dev, unsigned offset);

/* Add a chain of out readable then in writable buffers to the available
 * ring (not yet notified); returns the head, or -1 if descriptors ran out. */
int virtq_add(struct virtq *vq, const struct virtq_buf *bufs, unsigned out, unsigned in);
/* Notify the device unless it suppressed notifications (§2.7.10). */
void virtq_kick(struct virtq *vq);
bool virtq_has_used(const struct virtq *vq);
/* Take one used element: its head and length; -1 if none. */
int virtq_get_used(struct virtq *vq, uint32_t *len);
/* Wait until the used ring moves; false if the device needs a reset. */
bool virtq_wait(struct virtq *vq);
/* Add, kick, wait, take: one synchronous request; returns the used length or -1. */
int64_t virtq_transact(struct virtq *vq, const struct virtq_buf *bufs, unsigned out, unsigned in);

#endif
