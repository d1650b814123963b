/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for engine/config: the input is a command line and an environment.
 *
 * The input is cut at NUL bytes into at most MAX_ARGS pieces. A piece that starts with
 * "RINGCAST_" goes into the environment, any other onto the command line after "ringcast";
 * each lives in its own exact-size allocation, so ASan sees a read past its NUL. "@config" and
 * "@secret" name small fixed files (config_harness.h); every other path fails to open. The
 * result is checked against config.h's contract, twice, the second time with a small error
 * buffer whose size comes from the input length, or none.
 */
#include "config_harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

static const char config_text[] = "# a config file, as --config or RINGCAST_CONFIG names it\n"
                                  "max-conns = 7\n"
                                  "shards = 3\n"
                                  "listen = \"127.0.0.1:0\"\n"
                                  "allowed_origins = https://a.example, https://b.example\n";
static const char secret_text[] = "s3cret\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[MAX_ARGS + 2], *envp[MAX_ARGS + 1], *pieces[MAX_ARGS];
    char arg0[] = "ringcast";
    int argc = 1, nr_env = 0, nr = 0;
    size_t off = 0;

    config_harness_file(CONFIG_HARNESS_CONFIG, config_text, sizeof(config_text) - 1);
    config_harness_file(CONFIG_HARNESS_SECRET, secret_text, sizeof(secret_text) - 1);
    argv[0] = arg0;
    while (off < size && nr < MAX_ARGS) {
        const uint8_t *end = memchr(data + off, 0, size - off);
        size_t len = end != NULL ? (size_t)(end - (data + off)) : size - off;
        char *p = malloc(len + 1);

        if (p == NULL)
            abort();
        memcpy(p, data + off, len);
        p[len] = '\0';
        pieces[nr++] = p;
        if (strncmp(p, "RINGCAST_", 9) == 0)
            envp[nr_env++] = p;
        else
            argv[argc++] = p;
        off += len + 1;
    }
    argv[argc] = NULL;
    envp[nr_env] = NULL;
    config_harness_run(argc, argv, envp, size % 48);
    for (int i = 0; i < nr; i++)
        free(pieces[i]);
    return 0;
}
