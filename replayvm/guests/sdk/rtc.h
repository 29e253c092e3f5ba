/* MC146818-compatible CMOS real-time clock (ports 0x70/0x71). */
#ifndef SDK_RTC_H
#define SDK_RTC_H

struct rtc_time {
    unsigned year, month, day;
    unsigned hour, minute, second;
};

void rtc_read(struct rtc_time *t);

#endif
