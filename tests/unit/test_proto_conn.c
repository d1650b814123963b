/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of proto_conn's pure part: the client id (a UUID version 4, RFC 9562 §5.4). The
 * handler itself is tested against the real broker (tests/integration/test_proto.py and the
 * official SDK in test_proto_sdk.js).
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "proto_conn.h"

#include <string.h>

struct id_row {
    const char *what;
    uint8_t rnd[16];
    const char *want;
};

static const struct id_row id_rows[] = {
    {"all zero: only version and variant bits", {0}, "00000000-0000-4000-8000-000000000000"},
    {"all ones: version and variant bits cleared where they must be",
     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff},
     "ffffffff-ffff-4fff-bfff-ffffffffffff"},
    {"counting bytes",
     {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
      0xff},
     "00112233-4455-4677-8899-aabbccddeeff"},
};

static void client_id_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(id_rows) / sizeof(id_rows[0]); i++) {
        char out[PROTO_CLIENT_ID_LEN + 1];
        memset(out, '#', sizeof(out));
        print_message("row: %s\n", id_rows[i].what);
        proto_client_id(out, id_rows[i].rnd);
        assert_string_equal(out, id_rows[i].want);
        assert_int_equal(strlen(out), PROTO_CLIENT_ID_LEN);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(client_id_rows),
    };
    return cmocka_run_group_tests_name("proto_conn", tests, NULL, NULL);
}
