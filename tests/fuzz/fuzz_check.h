/* SPDX-License-Identifier: MIT */
/*
 * fuzz_check: the assertion of the fuzz targets. Unlike assert() it stays in every build, so a
 * broken promise aborts the fuzzer (which keeps the input) and fails the corpus replay.
 */
#ifndef RINGCAST_FUZZ_CHECK_H
#define RINGCAST_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
