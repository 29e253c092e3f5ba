/*
 * CMOS RTC read (MC146818A datasheet: registers 0x00-0x09, status A/B;
 * century at 0x32 as on the PC).  The clock registers are stable only
 * while status A's UIP bit is clear, so the read is repeated until two
 * consecutive reads agree.  Status B says BCD or binary and 12/24 hours.
 */
#include "rtc.h"

#include <stdbool.h>
#include <stdint.h>

#include "x86.h"

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71

#define RTC_SECONDS 0x00
#define RTC_MINUTES 0x02
#define RTC_HOURS 0x04
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_STATUS_A 0x0a
#define RTC_STATUS_B 0x0b
#define RTC_CENTURY 0x32

#define STATUS_A_UIP 0x80
#define STATUS_B_24H 0x02
#define STATUS_B_BINARY 0x04
#define HOURS_PM 0x80

static uint8_t cmos_read(uint8_t reg)
{
    outb(CMOS_INDEX, reg); /* bit 7 clear: NMI stays enabled */
    return inb(CMOS_DATA);
}

static void read_raw(uint8_t r[6], uint8_t *century)
{
    while (cmos_read(RTC_STATUS_A) & STATUS_A_UIP)
        ;
    r[0] = cmos_read(RTC_SECONDS);
    r[1] = cmos_read(RTC_MINUTES);
    r[2] = cmos_read(RTC_HOURS);
    r[3] = cmos_read(RTC_DAY);
    r[4] = cmos_read(RTC_MONTH);
    r[5] = cmos_read(RTC_YEAR);
    *century = cmos_read(RTC_CENTURY);
}

static unsigned from_bcd(uint8_t v)
{
    return (v >> 4) * 10u + (v & 0x0f);
}

void rtc_read(struct rtc_time *t)
{
    uint8_t a[6], b[6], ca, cb, status_b;
    bool same;

    read_raw(a, &ca);
    do {
        read_raw(b, &cb);
        same = ca == cb;
        for (int i = 0; i < 6; i++) {
            same = same && a[i] == b[i];
            a[i] = b[i];
        }
        ca = cb;
    } while (!same);

    status_b = cmos_read(RTC_STATUS_B);
    bool pm = (a[2] & HOURS_PM) != 0;
    a[2] &= (uint8_t)~HOURS_PM;
    unsigned v[6], century = ca;
    for (int i = 0; i < 6; i++)
        v[i] = (status_b & STATUS_B_BINARY) ? a[i] : from_bcd(a[i]);
    if (!(status_b & STATUS_B_BINARY))
        century = from_bcd(ca);
    if (!(status_b & STATUS_B_24H))
        v[2] = (v[2] % 12) + (pm ? 12 : 0);
    if (century < 19 || century > 99)
        century = 20;

    t->second = v[0];
    t->minute = v[1];
    t->hour = v[2];
    t->day = v[3];
    t->month = v[4];
    t->year = century * 100 + v[5];
}
