/*
 * virtio-mmio driver core: discovery, initialisation, split virtqueues
 * (virtio 1.2 §3.1, §4.2.3, §2.7.13 supplying buffers, §2.7.14 receiving
 * used buffers, §2.7.7 / §2.7.10 EVENT_IDX).
 */
#include "virtio.h"

#include "sdk.h"

#define PROBE_BASE 0xd0000000ul
#define PROBE_STRIDE 0x1000ul
static const uint8_t probe_irqs[] = {5, 6, 7, 9, 10, 11};

static const char *source = "probe";
static struct virtio_dev *irq_devices[NUM_IRQS];

static inline uint32_t reg_read(const struct virtio_dev *dev, unsigned offset)
{
    return *(volatile uint32_t *)(dev->base + offset);
}

static inline void reg_write(const struct virtio_dev *dev, unsigned offset, uint32_t value)
{
    *(volatile uint32_t *)(dev->base + offset) = value;
}

/* x86 keeps stores in order but may pass a load ahead of an older store. */
static inline void mb(void)
{
    __asm__ volatile("mfence" : : : "memory");
}

static inline void barrier(void)
{
    __asm__ volatile("" : : : "memory");
}

/* -- discovery ------------------------------------------------------------ */

/* A number as Linux's memparse() reads it: decimal or 0x hex, optional K/M/G. */
static bool parse_number(const char **p, const char *end, uint64_t *out, bool suffixes)
{
    const char *s = *p;
    unsigned base = 10;
    uint64_t n = 0;
    bool any = false;

    if (end - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (; s < end; s++) {
        unsigned digit;

        if (*s >= '0' && *s <= '9')
            digit = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            digit = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            digit = (unsigned)(*s - 'A' + 10);
        else
            break;
        n = n * base + digit;
        any = true;
    }
    if (suffixes && s < end) {
        unsigned shift = *s == 'K' || *s == 'k' ? 10 : *s == 'M' || *s == 'm' ? 20 :
                         *s == 'G' || *s == 'g' ? 30 : 0;
        if (shift) {
            n <<= shift;
            s++;
        }
    }
    *p = s;
    *out = n;
    return any;
}

/* "<size>@<base>:<irq>[:<id>]" (Linux Documentation/admin-guide/kernel-parameters.txt). */
static bool parse_device(const char *v, const char *end, uint64_t *base, unsigned *irq)
{
    uint64_t size, addr, line;

    if (!parse_number(&v, end, &size, true) || v == end || *v++ != '@')
        return false;
    if (!parse_number(&v, end, &addr, false) || v == end || *v++ != ':')
        return false;
    if (!parse_number(&v, end, &line, false) || line >= NUM_IRQS)
        return false;
    *base = addr;
    *irq = (unsigned)line;
    return size != 0;
}

static bool probe(uintptr_t base, unsigned irq, struct virtio_dev *dev)
{
    memset(dev, 0, sizeof(*dev));
    dev->base = base;
    dev->irq = irq;
    if (reg_read(dev, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC)
        return false;
    dev->version = reg_read(dev, VIRTIO_MMIO_VERSION);
    dev->device_id = reg_read(dev, VIRTIO_MMIO_DEVICE_ID);
    return dev->device_id != 0 && dev->version == 2; /* ID 0: placeholder (§4.2.2) */
}

unsigned virtio_discover(struct virtio_dev *devs, unsigned max)
{
    static const char key[] = "virtio_mmio.device=";
    const char *p = cmdline();
    unsigned n = 0;
    bool announced = false;

    while (*p) {
        const char *word, *end;
        uint64_t base;
        unsigned irq;

        while (*p == ' ')
            p++;
        word = p;
        while (*p && *p != ' ')
            p++;
        end = p;
        if ((size_t)(end - word) <= sizeof(key) - 1 || strncmp(word, key, sizeof(key) - 1) != 0)
            continue;
        announced = true;
        if (parse_device(word + sizeof(key) - 1, end, &base, &irq) && n < max &&
            probe((uintptr_t)base, irq, &devs[n]))
            n++;
    }
    if (announced) {
        source = "cmdline";
        return n;
    }
    source = "probe";
    for (unsigned i = 0; i < sizeof(probe_irqs) && n < max; i++) {
        if (probe(PROBE_BASE + PROBE_STRIDE * i, probe_irqs[i], &devs[n]))
            n++;
    }
    return n;
}

const char *virtio_discovery_source(void)
{
    return source;
}

bool virtio_find(uint32_t device_id, struct virtio_dev *dev)
{
    static struct virtio_dev found[VIRTIO_MAX_DEVICES];
    unsigned n = virtio_discover(found, VIRTIO_MAX_DEVICES);

    for (unsigned i = 0; i < n; i++) {
        if (found[i].device_id == device_id) {
            *dev = found[i];
            return true;
        }
    }
    return false;
}

bool virtio_polled(void)
{
    const char *v;
    size_t len;

    return cmdline_get("virtio_poll", &v, &len);
}

/* -- initialisation (§3.1.1) ----------------------------------------------- */

uint32_t virtio_status(const struct virtio_dev *dev)
{
    return reg_read(dev, VIRTIO_MMIO_STATUS);
}

bool virtio_init(struct virtio_dev *dev, uint64_t wanted)
{
    uint32_t status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    uint64_t accept;

    reg_write(dev, VIRTIO_MMIO_STATUS, 0);
    while (reg_read(dev, VIRTIO_MMIO_STATUS) != 0) /* §2.4.2: wait for the reset */
        ;
    reg_write(dev, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    reg_write(dev, VIRTIO_MMIO_STATUS, status);

    reg_write(dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    dev->offered = (uint64_t)reg_read(dev, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
    reg_write(dev, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    dev->offered |= reg_read(dev, VIRTIO_MMIO_DEVICE_FEATURES);
    if (virtio_polled()) /* VIRTQ_AVAIL_F_NO_INTERRUPT only counts without EVENT_IDX (§2.7.7) */
        wanted &= ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    accept = dev->offered & (wanted | VIRTIO_BIT(VIRTIO_F_VERSION_1));
    if (!(accept & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
        reg_write(dev, VIRTIO_MMIO_STATUS, status | VIRTIO_STATUS_FAILED);
        return false;
    }
    reg_write(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    reg_write(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(accept >> 32));
    reg_write(dev, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(dev, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)accept);

    status |= VIRTIO_STATUS_FEATURES_OK;
    reg_write(dev, VIRTIO_MMIO_STATUS, status);
    if (!(reg_read(dev, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
        reg_write(dev, VIRTIO_MMIO_STATUS, status | VIRTIO_STATUS_FAILED);
        return false;
    }
    dev->features = accept;
    return true;
}

static void virtio_irq(struct trap_frame *frame)
{
    struct virtio_dev *dev = irq_devices[frame->vector - IRQ_BASE];
    uint32_t pending;

    if (!dev)
        return;
    pending = reg_read(dev, VIRTIO_MMIO_INTERRUPT_STATUS);
    reg_write(dev, VIRTIO_MMIO_INTERRUPT_ACK, pending);
    dev->interrupts = dev->interrupts + 1;
    if ((pending & VIRTIO_MMIO_INT_CONFIG) &&
        (reg_read(dev, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET))
        dev->broken = true;
}

void virtio_driver_ok(struct virtio_dev *dev)
{
    if (!virtio_polled() && dev->irq < NUM_IRQS) {
        irq_devices[dev->irq] = dev;
        irq_set_handler(dev->irq, virtio_irq);
        pic_unmask(dev->irq);
    }
    reg_write(dev, VIRTIO_MMIO_STATUS,
              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                  VIRTIO_STATUS_DRIVER_OK);
}

/* -- configuration space (§2.5.1: retry while ConfigGeneration moves) ------- */

#define CONFIG_READ(type, dev, offset)                                                   \
    ({                                                                                   \
        uint32_t gen_;                                                                   \
        type value_;                                                                     \
        do {                                                                             \
            gen_ = reg_read(dev, VIRTIO_MMIO_CONFIG_GENERATION);                         \
            value_ = *(volatile type *)((dev)->base + VIRTIO_MMIO_CONFIG + (offset));    \
        } while (gen_ != reg_read(dev, VIRTIO_MMIO_CONFIG_GENERATION));                  \
        value_;                                                                          \
    })

uint8_t virtio_config8(const struct virtio_dev *dev, unsigned offset)
{
    return CONFIG_READ(uint8_t, dev, offset);
}

uint16_t virtio_config16(const struct virtio_dev *dev, unsigned offset)
{
    return CONFIG_READ(uint16_t, dev, offset);
}

uint32_t virtio_config32(const struct virtio_dev *dev, unsigned offset)
{
    return CONFIG_READ(uint32_t, dev, offset);
}

/* Two 32-bit reads: MMIO accesses wider than 4 bytes are split anyway. */
uint64_t virtio_config64(const struct virtio_dev *dev, unsigned offset)
{
    uint32_t gen, lo, hi;

    do {
        gen = reg_read(dev, VIRTIO_MMIO_CONFIG_GENERATION);
        lo = *(volatile uint32_t *)(dev->base + VIRTIO_MMIO_CONFIG + offset);
        hi = *(volatile uint32_t *)(dev->base + VIRTIO_MMIO_CONFIG + offset + 4);
    } while (gen != reg_read(dev, VIRTIO_MMIO_CONFIG_GENERATION));
    return (uint64_t)hi << 32 | lo;
}

/* -- split virtqueues (§2.7) ----------------------------------------------- */

static volatile uint16_t *used_event(struct virtq *vq)
{
    return &vq->avail->ring[vq->size];
}

static volatile uint16_t *avail_event(struct virtq *vq)
{
    return (volatile uint16_t *)&vq->used->ring[vq->size];
}

bool virtq_init(struct virtq *vq, struct virtio_dev *dev, unsigned index, uint16_t size)
{
    uint32_t max;
    size_t desc_bytes, avail_bytes, used_bytes;
    uint8_t *area;

    reg_write(dev, VIRTIO_MMIO_QUEUE_SEL, index);
    if (reg_read(dev, VIRTIO_MMIO_QUEUE_READY))
        return false;
    max = reg_read(dev, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max == 0)
        return false;
    if (size > max)
        size = (uint16_t)max;
    while (size & (size - 1))
        size &= (uint16_t)(size - 1);

    desc_bytes = sizeof(struct virtq_desc) * size;
    avail_bytes = (6 + 2 * (size_t)size + 3) & ~(size_t)3;
    used_bytes = 6 + sizeof(struct virtq_used_elem) * size;
    area = memmap_reserve(desc_bytes + avail_bytes + used_bytes, 4096);
    memset(area, 0, desc_bytes + avail_bytes + used_bytes);

    memset(vq, 0, sizeof(*vq));
    vq->dev = dev;
    vq->index = index;
    vq->size = size;
    vq->event_idx = (dev->features & VIRTIO_BIT(VIRTIO_F_EVENT_IDX)) != 0;
    vq->desc = (struct virtq_desc *)area;
    vq->avail = (volatile struct virtq_avail *)(area + desc_bytes);
    vq->used = (volatile struct virtq_used *)(area + desc_bytes + avail_bytes);
    for (uint16_t i = 0; i < size; i++)
        vq->desc[i].next = (uint16_t)(i + 1);
    vq->num_free = size;
    if (virtio_polled())
        vq->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;

    reg_write(dev, VIRTIO_MMIO_QUEUE_NUM, size);
    reg_write(dev, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(uintptr_t)vq->desc);
    reg_write(dev, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)((uint64_t)(uintptr_t)vq->desc >> 32));
    reg_write(dev, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(uintptr_t)vq->avail);
    reg_write(dev, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)((uint64_t)(uintptr_t)vq->avail >> 32));
    reg_write(dev, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(uintptr_t)vq->used);
    reg_write(dev, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)((uint64_t)(uintptr_t)vq->used >> 32));
    reg_write(dev, VIRTIO_MMIO_QUEUE_READY, 1);
    return reg_read(dev, VIRTIO_MMIO_QUEUE_READY) == 1;
}

int virtq_add(struct virtq *vq, const struct virtq_buf *bufs, unsigned out, unsigned in)
{
    unsigned total = out + in;
    uint16_t head, i;

    if (total == 0 || total > vq->num_free)
        return -1;
    head = i = vq->free_head;
    for (unsigned n = 0; n < total; n++) {
        struct virtq_desc *d = &vq->desc[i];

        d->addr = (uint64_t)(uintptr_t)bufs[n].addr;
        d->len = bufs[n].len;
        d->flags = (uint16_t)((n >= out ? VIRTQ_DESC_F_WRITE : 0) |
                              (n + 1 < total ? VIRTQ_DESC_F_NEXT : 0));
        i = d->next;
    }
    vq->free_head = i;
    vq->num_free = (uint16_t)(vq->num_free - total);

    vq->avail->ring[vq->avail_idx % vq->size] = head;
    barrier(); /* the ring entry before the index (§2.7.13.2) */
    vq->avail_idx++;
    vq->avail->idx = vq->avail_idx;
    return head;
}

/* §2.7.10: the device asks for a notification when avail->idx passes avail_event. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

void virtq_kick(struct virtq *vq)
{
    uint16_t old = vq->kicked_idx, new_idx = vq->avail_idx;
    bool notify;

    mb(); /* publish avail->idx before reading the device's suppression state */
    if (vq->event_idx)
        notify = need_event(*avail_event(vq), new_idx, old);
    else
        notify = !(vq->used->flags & VIRTQ_USED_F_NO_NOTIFY);
    vq->kicked_idx = new_idx;
    if (notify) {
        reg_write(vq->dev, VIRTIO_MMIO_QUEUE_NOTIFY, vq->index);
        vq->notifications++;
    }
}

bool virtq_has_used(const struct virtq *vq)
{
    return vq->used->idx != vq->last_used;
}

int virtq_get_used(struct virtq *vq, uint32_t *len)
{
    volatile struct virtq_used_elem *elem;
    uint16_t head, i;

    if (!virtq_has_used(vq))
        return -1;
    barrier(); /* the index before the element (§2.7.14) */
    elem = &vq->used->ring[vq->last_used % vq->size];
    head = (uint16_t)elem->id;
    if (len)
        *len = elem->len;
    vq->last_used++;
    if (vq->event_idx)
        *used_event(vq) = vq->last_used;

    for (i = head;; i = vq->desc[i].next) {
        vq->num_free++;
        if (!(vq->desc[i].flags & VIRTQ_DESC_F_NEXT))
            break;
    }
    vq->desc[i].next = vq->free_head;
    vq->free_head = head;
    return head;
}

static bool used_or_broken(void *arg)
{
    struct virtq *vq = arg;

    return virtq_has_used(vq) || vq->dev->broken;
}

bool virtq_wait(struct virtq *vq)
{
    if (vq->event_idx)
        *used_event(vq) = vq->last_used; /* interrupt me for the next one */
    mb();
    if (virtio_polled()) {
        while (!virtq_has_used(vq)) {
            if (virtio_status(vq->dev) & VIRTIO_STATUS_NEEDS_RESET) {
                vq->dev->broken = true;
                return false;
            }
            __asm__ volatile("pause");
        }
        return true;
    }
    idle_until(used_or_broken, vq);
    return virtq_has_used(vq);
}

int64_t virtq_transact(struct virtq *vq, const struct virtq_buf *bufs, unsigned out, unsigned in)
{
    uint32_t len;

    if (virtq_add(vq, bufs, out, in) < 0)
        return -1;
    virtq_kick(vq);
    if (!virtq_wait(vq))
        return -1;
    virtq_get_used(vq, &len);
    return len;
}
