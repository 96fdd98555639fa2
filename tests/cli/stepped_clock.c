/* A preload library that steps one process's wall clock, as an NTP step or a bad RTC would,
 * leaving its monotonic clock alone (libfaketime fakes both, or fails Python's sleep when
 * told not to). The offset, in seconds, is read from the file STEP_CLOCK_FILE names, at most
 * every 50 ms: the test writes it to step the clock while the process runs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static long long offset_ns;
static long long checked_ns = -1;

static long long monotonic_ns(void) {
    struct timespec now;
    real_clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void reload(void) {
    if (!real_clock_gettime)
        real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    long long now = monotonic_ns();
    if (checked_ns >= 0 && now - checked_ns < 50000000LL)
        return;
    checked_ns = now;
    const char *path = getenv("STEP_CLOCK_FILE");
    FILE *file = path ? fopen(path, "r") : NULL;
    if (!file)
        return;
    double seconds;
    if (fscanf(file, "%lf", &seconds) == 1)
        offset_ns = (long long)(seconds * 1e9);
    fclose(file);
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    reload();
    int result = real_clock_gettime(id, ts);
    if (result == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        long long ns = ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns;
        ts->tv_sec = ns / 1000000000LL;
        ts->tv_nsec = ns % 1000000000LL;
    }
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
