/* SPDX-License-Identifier: MIT */
/*
 * config_harness: what the two config fuzz targets (fuzz_config_file, fuzz_config_argv) share.
 *
 * Files. The config targets are linked with -Wl,--wrap=fopen, so every fopen() in the program
 * comes here; while config_load() runs, two names are served from memory: CONFIG_HARNESS_CONFIG
 * ("@config", for --config) and CONFIG_HARNESS_SECRET ("@secret", for --jwt-secret-file); every
 * other name fails with ENOENT. Without this, an input naming /dev/zero or /dev/stdin would hang
 * the fuzzer on a read that never ends, and whether "abc" opens would depend on the directory it
 * runs in.
 *
 * Checks. config_harness_check() aborts unless the result of config_load() keeps what
 * config.h promises. Single-threaded, like the targets.
 */
#ifndef RINGCAST_FUZZ_CONFIG_HARNESS_H
#define RINGCAST_FUZZ_CONFIG_HARNESS_H

#include "config.h"

#include <stddef.h>
#include <stdio.h>

#define CONFIG_HARNESS_CONFIG "@config"
#define CONFIG_HARNESS_SECRET "@secret"

/* Serves <len> bytes of <data> as the contents of <name>; borrows <data> until the next call
 * for the same name. Names other than the two above are ignored. Cannot fail. */
void config_harness_file(const char *name, const void *data, size_t len);

/* What the engine's fopen() calls become. */
FILE *__wrap_fopen(const char *path, const char *mode);

/*
 * Runs config_load(<argc>, <argv>, <envp>) twice, with a roomy error buffer and with one of
 * <small_cap> bytes (NULL when 0), checks both results against the contract and against each
 * other, and frees what they hold. Aborts on a broken promise.
 */
void config_harness_run(int argc, char **argv, char **envp, size_t small_cap);

#endif
