/* SPDX-License-Identifier: MIT */
/*
 * Micro-benchmark of engine/ws_frame's hot paths, in ns per operation:
 *   parse   a stream of 100-byte masked text frames, per frame
 *   header  ws_frame_header() for a mix of lengths, masked and not
 *   unmask  ws_mask() over 1 KiB
 *   utf8    utf8_validate() over 1 KiB of ASCII and 1 KiB of mixed text
 * Usage: micro_ws_frame [seconds per case, default 0.3]. Build the release preset for
 * meaningful numbers; a sanitizer build runs too, just slower.
 */
#include "ws_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#define NR_FRAMES   1024
#define PAYLOAD_LEN 100
#define KIB         1024

/* Results are folded in here so the compiler cannot drop the work. */
static volatile uint64_t sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void print_env(void)
{
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon) {
                snprintf(model, sizeof(model), "%s", colon + 2);
                model[strcspn(model, "\n")] = '\0';
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) == 0)
        printf("# %s, %s %s\n", model, u.sysname, u.release);
}

/* Builds NR_FRAMES client text frames of PAYLOAD_LEN bytes; returns the stream length. */
static size_t build_stream(uint8_t *out)
{
    /*
     * An all-zero masking key (legal, if unwise for a real client) leaves the payload as it
     * was after the in-place unmask, so the same buffer can be parsed again and again without
     * a restoring copy inside the timed loop; ws_mask() does the same work for any key.
     */
    static const uint8_t key[4] = {0, 0, 0, 0};
    size_t pos = 0;
    for (int i = 0; i < NR_FRAMES; i++) {
        pos += ws_frame_header(out + pos, WS_OP_TEXT, true, PAYLOAD_LEN, key);
        for (int j = 0; j < PAYLOAD_LEN; j++)
            out[pos++] = (uint8_t)('a' + (i + j) % 26);
    }
    return pos;
}

static double bench_parse(uint8_t *stream, size_t len, double budget)
{
    uint64_t ops = 0;
    double t0 = now_ns(), t;
    do {
        struct ws_parser p = {.max_message = 65536, .server = true};
        size_t off = 0;
        while (off < len) {
            struct ws_chunk c;
            bool got;
            ssize_t rc = ws_parser_feed(&p, stream + off, len - off, &c, &got);
            if (rc <= 0) {
                fprintf(stderr, "parse failed: %zd\n", rc);
                exit(1);
            }
            off += (size_t)rc;
            sink += c.len;
        }
        ops += NR_FRAMES;
        t = now_ns();
    } while (t - t0 < budget);
    return (t - t0) / (double)ops;
}

static double bench_header(double budget)
{
    static const uint64_t lens[4] = {5, 100, 1000, 70000};
    static const uint8_t key[4] = {1, 2, 3, 4};
    uint8_t out[WS_HEADER_MAX];
    uint64_t ops = 0;
    double t0 = now_ns(), t;
    do {
        for (int i = 0; i < 1024; i++)
            sink += ws_frame_header(out, WS_OP_BINARY, true, lens[i & 3], i & 4 ? key : NULL);
        ops += 1024;
        t = now_ns();
    } while (t - t0 < budget);
    return (t - t0) / (double)ops;
}

static double bench_mask(uint8_t *buf, double budget)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    uint64_t ops = 0;
    double t0 = now_ns(), t;
    do {
        for (int i = 0; i < 256; i++)
            sink += ws_mask(buf, KIB, key, (unsigned)i & 3);
        ops += 256;
        t = now_ns();
    } while (t - t0 < budget);
    return (t - t0) / (double)ops;
}

static double bench_utf8(const uint8_t *buf, double budget)
{
    uint64_t ops = 0;
    double t0 = now_ns(), t;
    do {
        for (int i = 0; i < 256; i++)
            sink += utf8_validate(UTF8_ACCEPT, buf, KIB);
        ops += 256;
        t = now_ns();
    } while (t - t0 < budget);
    return (t - t0) / (double)ops;
}

int main(int argc, char **argv)
{
    double budget = (argc > 1 ? atof(argv[1]) : 0.3) * 1e9;
    size_t stream_cap = (size_t)NR_FRAMES * (WS_HEADER_MAX + PAYLOAD_LEN);
    uint8_t *stream = malloc(stream_cap);
    uint8_t *ascii = malloc(KIB), *mixed = malloc(KIB), *scratch = calloc(1, KIB);
    if (!stream || !ascii || !mixed || !scratch) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    size_t len = build_stream(stream);

    for (int i = 0; i < KIB; i++)
        ascii[i] = (uint8_t)(' ' + i % 95);
    /* Chat-like text: mostly ASCII with 2-, 3- and 4-byte sequences mixed in. */
    static const char sample[] = "Grüße, κόσμε – ok 😀 done. ";
    size_t n = 0;
    while (n + sizeof(sample) - 1 <= KIB) {
        memcpy(mixed + n, sample, sizeof(sample) - 1);
        n += sizeof(sample) - 1;
    }
    memset(mixed + n, '.', KIB - n);
    if (utf8_validate(UTF8_ACCEPT, mixed, KIB) != UTF8_ACCEPT) {
        fprintf(stderr, "mixed sample is not valid UTF-8\n");
        return 1;
    }

    print_env();
    printf("parse 100 B masked text frame  %8.1f ns/frame\n", bench_parse(stream, len, budget));
    printf("encode frame header            %8.1f ns/op\n", bench_header(budget));
    printf("unmask 1 KiB                   %8.1f ns/op\n", bench_mask(scratch, budget));
    printf("utf8_validate 1 KiB ASCII      %8.1f ns/op\n", bench_utf8(ascii, budget));
    printf("utf8_validate 1 KiB mixed      %8.1f ns/op\n", bench_utf8(mixed, budget));

    free(scratch);
    free(mixed);
    free(ascii);
    free(stream);
    return 0;
}
