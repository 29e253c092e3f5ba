/*
 * net: virtio-net against the user-mode network's gateway at 10.0.2.2
 * (QEMU's slirp, or ReplayVM's built-in responder).
 *
 * Resolves 10.0.2.2 with ARP (RFC 826), then pings it `count` times with
 * ICMP echo requests (RFC 792) of 56 data bytes, checking the IPv4 and
 * ICMP checksums (RFC 1071) of every reply.  The guest is 10.0.2.15 and
 * answers ARP requests for itself; other frames are ignored.
 *
 * Command line: count=N (default 3).
 * Exit code: 0; 1 without a virtio-net device or if a reply was wrong.
 */
#include "sdk.h"
#include "virtio_net.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2
#define IPPROTO_ICMP 1
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define PING_ID 0x7276 /* "rv" */
#define PING_DATA 56
#define MAX_IGNORED 1000

static const uint8_t guest_ip[4] = {10, 0, 2, 15};
static const uint8_t gateway_ip[4] = {10, 0, 2, 2};
static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static struct virtio_net net;
static uint8_t gateway_mac[6];
static uint8_t frame[ETH_FRAME_MAX];
static uint8_t rx[ETH_FRAME_MAX];
static unsigned ignored;

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* RFC 1071 */
static uint16_t inet_checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;

    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static size_t eth_header(uint8_t *f, const uint8_t *dst, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, net.mac, 6);
    put16(f + 12, type);
    return ETH_HLEN;
}

static void send_arp(uint16_t op, const uint8_t *dst_mac, const uint8_t *target_mac, const uint8_t *target_ip)
{
    size_t n = eth_header(frame, dst_mac, ETH_P_ARP);
    uint8_t *a = frame + n;

    put16(a, 1);         /* htype Ethernet */
    put16(a + 2, ETH_P_IP);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, net.mac, 6);
    memcpy(a + 14, guest_ip, 4);
    memcpy(a + 18, target_mac, 6);
    memcpy(a + 24, target_ip, 4);
    n += 28;
    memset(frame + n, 0, 60 - n); /* pad to the Ethernet minimum */
    virtio_net_send(&net, frame, 60);
}

static void send_ping(uint16_t seq)
{
    size_t n = eth_header(frame, gateway_mac, ETH_P_IP);
    uint8_t *ip = frame + n, *icmp = ip + 20;
    uint16_t total = 20 + 8 + PING_DATA;

    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, total);
    put16(ip + 4, seq);   /* identification */
    ip[8] = 64;           /* TTL */
    ip[9] = IPPROTO_ICMP;
    memcpy(ip + 12, guest_ip, 4);
    memcpy(ip + 16, gateway_ip, 4);
    put16(ip + 10, inet_checksum(ip, 20));

    icmp[0] = ICMP_ECHO;
    icmp[1] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 4, PING_ID);
    put16(icmp + 6, seq);
    for (unsigned i = 0; i < PING_DATA; i++)
        icmp[8 + i] = (uint8_t)(0x20 + (i + seq) % 0x5f);
    put16(icmp + 2, inet_checksum(icmp, 8 + PING_DATA));
    virtio_net_send(&net, frame, n + total);
}

/* Answer "who has 10.0.2.15" (slirp asks before it can reply to us). */
static bool handle_arp_request(const uint8_t *f, int len)
{
    const uint8_t *a = f + ETH_HLEN;

    if (len < ETH_HLEN + 28 || get16(f + 12) != ETH_P_ARP || get16(a + 6) != ARPOP_REQUEST ||
        memcmp(a + 24, guest_ip, 4) != 0)
        return false;
    send_arp(ARPOP_REPLY, a + 8, a + 8, a + 14);
    return true;
}

static int receive(void)
{
    int len = virtio_net_recv(&net, rx, sizeof(rx));

    if (len < 0)
        panic("net: the device stopped (needs reset)");
    return len;
}

static void ignore(void)
{
    if (++ignored > MAX_IGNORED)
        panic("net: %u unexpected frames and no answer", ignored);
}

static void resolve_gateway(void)
{
    static const uint8_t zero[6];

    send_arp(ARPOP_REQUEST, broadcast, zero, gateway_ip);
    for (;;) {
        int len = receive();
        const uint8_t *a = rx + ETH_HLEN;

        if (handle_arp_request(rx, len))
            continue;
        if (len >= ETH_HLEN + 28 && get16(rx + 12) == ETH_P_ARP && get16(a + 6) == ARPOP_REPLY &&
            memcmp(a + 14, gateway_ip, 4) == 0) {
            memcpy(gateway_mac, a + 8, 6);
            return;
        }
        ignore();
    }
}

/* Wait for the echo reply to seq; true if its checksums are right. */
static bool await_reply(uint16_t seq, unsigned *ttl, unsigned *bytes)
{
    for (;;) {
        int len = receive();
        const uint8_t *ip = rx + ETH_HLEN, *icmp;
        unsigned hlen, total;

        if (handle_arp_request(rx, len))
            continue;
        if (len < ETH_HLEN + 20 || get16(rx + 12) != ETH_P_IP || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_ICMP) {
            ignore();
            continue;
        }
        hlen = (ip[0] & 0xf) * 4u;
        total = get16(ip + 2);
        icmp = ip + hlen;
        if (total > (unsigned)len - ETH_HLEN || total < hlen + 8 || icmp[0] != ICMP_ECHOREPLY ||
            get16(icmp + 4) != PING_ID || get16(icmp + 6) != seq || memcmp(ip + 12, gateway_ip, 4) != 0) {
            ignore();
            continue;
        }
        *ttl = ip[8];
        *bytes = total - hlen;
        return inet_checksum(ip, hlen) == 0 && inet_checksum(icmp, total - hlen) == 0 &&
               total - hlen == 8 + PING_DATA;
    }
}

/* UDP echo through a host tunnel (udp=PORT): a datagram to 10.0.2.2:PORT must come back unchanged. */
#define UDP_SPORT 40000
static bool udp_echo(uint16_t port, unsigned *bytes)
{
    static const char message[] = "hello from the guest over udp";
    size_t n = eth_header(frame, gateway_mac, ETH_P_IP);
    uint8_t *ip = frame + n, *udp = ip + 20;
    uint16_t total = 20 + 8 + sizeof(message);

    memset(ip, 0, 28);
    ip[0] = 0x45;
    put16(ip + 2, total);
    ip[8] = 64;
    ip[9] = 17; /* IPPROTO_UDP */
    memcpy(ip + 12, guest_ip, 4);
    memcpy(ip + 16, gateway_ip, 4);
    put16(ip + 10, inet_checksum(ip, 20));
    put16(udp, UDP_SPORT);
    put16(udp + 2, port);
    put16(udp + 4, 8 + sizeof(message));
    put16(udp + 6, 0); /* no UDP checksum (IPv4 allows it) */
    memcpy(udp + 8, message, sizeof(message));
    virtio_net_send(&net, frame, n + total);
    for (;;) {
        int len = receive();
        const uint8_t *rip = rx + ETH_HLEN, *rudp = rip + 20;

        if (handle_arp_request(rx, len))
            continue;
        if (len < ETH_HLEN + 28 || get16(rx + 12) != ETH_P_IP || rip[0] != 0x45 || rip[9] != 17 ||
            get16(rudp) != port || get16(rudp + 2) != UDP_SPORT) {
            ignore();
            continue;
        }
        *bytes = get16(rudp + 4) - 8u;
        return *bytes == sizeof(message) && memcmp(rudp + 8, message, sizeof(message)) == 0 &&
               inet_checksum(rip, 20) == 0;
    }
}

int kmain(const struct hvm_start_info *info)
{
    uint64_t count = cmdline_get_u64("count", 3);
    uint64_t udp_port = cmdline_get_u64("udp", 0);
    unsigned received = 0;

    (void)info;
    if (count == 0 || count > 1000)
        panic("net: count must be 1..1000");
    if (!virtio_net_open(&net)) {
        kprintf("net: no virtio-net device found (%s)\n", virtio_discovery_source());
        return GUEST_EXIT_FAIL;
    }
    kprintf("[var] net: virtio-net at 0x%lx, irq %u, features offered 0x%lx\n", (uint64_t)net.dev.base,
            net.dev.irq, net.dev.offered);
    kprintf("net: MAC %02x:%02x:%02x:%02x:%02x:%02x, link %s\n", net.mac[0], net.mac[1], net.mac[2],
            net.mac[3], net.mac[4], net.mac[5], net.link_up ? "up" : "down");

    resolve_gateway();
    kprintf("net: 10.0.2.2 is at %02x:%02x:%02x:%02x:%02x:%02x\n", gateway_mac[0], gateway_mac[1],
            gateway_mac[2], gateway_mac[3], gateway_mac[4], gateway_mac[5]);

    for (uint16_t seq = 1; seq <= count; seq++) {
        unsigned ttl, bytes;
        bool good;

        send_ping(seq);
        good = await_reply(seq, &ttl, &bytes);
        kprintf("net: %u bytes from 10.0.2.2: icmp_seq=%u ttl=%u checksums %s\n", bytes, seq, ttl,
                good ? "ok" : "BAD");
        received += good;
    }
    kprintf("net: %lu packets transmitted, %u received\n", count, received);
    if (udp_port) {
        unsigned bytes;
        bool same = udp_echo((uint16_t)udp_port, &bytes);
        kprintf("net: udp echo from 10.0.2.2:%lu: %u bytes, %s\n", udp_port, bytes, same ? "payload matches" : "BAD");
        received += same ? 0 : 1000; /* a bad echo fails the run */
    }
    kprintf("[var] net: %u other frames ignored, %lu frames sent, %lu received, %lu interrupts\n", ignored,
            net.tx_frames, net.rx_frames, net.dev.interrupts);
    return received == count ? GUEST_EXIT_OK : GUEST_EXIT_FAIL;
}
