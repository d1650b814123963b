/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for engine/config: the input is a config file.
 *
 * config_load() reads it as "--config @config", with a command line and an environment that
 * also set some options, so that values which lose on precedence are parsed too (into the
 * scratch struct) and their errors reported. The input is also what "@secret" holds, for
 * "jwt-secret-file = @secret". Files come from memory (config_harness.h); the result is
 * checked against config.h's contract, twice, the second time with a small error buffer
 * whose size comes from the input length, or none.
 */
#include "config_harness.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char arg0[] = "ringcast", arg1[] = "--config", arg2[] = CONFIG_HARNESS_CONFIG;
    char arg3[] = "--shards", arg4[] = "2";
    char env0[] = "RINGCAST_MAX_CONNS=5", env1[] = "RINGCAST_LOG_LEVEL=";
    char *argv[] = {arg0, arg1, arg2, arg3, arg4, NULL};
    char *envp[] = {env0, env1, NULL};
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees a read past the end */

    if (copy == NULL)
        abort();
    memcpy(copy, data, size);
    config_harness_file(CONFIG_HARNESS_CONFIG, copy, size);
    config_harness_file(CONFIG_HARNESS_SECRET, copy, size);
    config_harness_run(5, argv, envp, size % 48);
    free(copy);
    return 0;
}
