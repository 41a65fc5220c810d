/* A slow disk for benchmarks: loaded with LD_PRELOAD, it makes every fsync and
 * fdatasync of the daemon's store files (switchboard.sqlite3*) take at least
 * SLOW_DISK_SYNC_US microseconds more, as a disk whose cache flush is slow would.
 * Build: cc -O2 -shared -fPIC -o slow_disk.so slow_disk.c -ldl
 * (benches/sitting.sh runs scenarios with it: `slowN:SCENARIO`). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int is_store_file(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strstr(path, "switchboard.sqlite3") != NULL;
}

static void wait_out(int fd) {
    const char *us = getenv("SLOW_DISK_SYNC_US");
    if (!us || !is_store_file(fd)) return;
    long delay = atol(us);
    struct timespec ts = {delay / 1000000, (delay % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int result = real(fd);
    wait_out(fd);
    return result;
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int result = real(fd);
    wait_out(fd);
    return result;
}
