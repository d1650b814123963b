/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for engine/jwt.c, through the public header only. Most tokens are signed here
 * with mbedtls HMAC-SHA256 from a header and claims text, so each row shows the JSON it is
 * about; two are fixed known-answer tokens made independently (see known_answer_*), so that
 * the signing helper and the verifier cannot share a mistake.
 */
/* cmocka.h needs these four first, so the include order is kept by hand. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "jwt.h"

#include <errno.h>
#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "ringcast-test-secret"
#define HS256  "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define NOW    1900000000

static const struct jwt_key key = {.secret = (const uint8_t *)SECRET,
                                   .secret_len = sizeof(SECRET) - 1};

/* base64url without padding of <p>/<n>, appended to <out> (<cap> bytes) at *<len>. */
static void b64url(const void *p, size_t n, char *out, size_t cap, size_t *len)
{
    size_t olen = 0;
    assert_int_equal(mbedtls_base64_encode((unsigned char *)out + *len, cap - *len, &olen, p, n),
                     0);
    for (size_t i = *len; i < *len + olen; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    while (olen && out[*len + olen - 1] == '=')
        olen--;
    *len += olen;
    out[*len] = '\0';
}

/* A token for <header>/<claims> signed with <secret>; static storage, one at a time. */
static const char *sign_with(const char *header, const char *claims, const char *secret)
{
    static char tok[JWT_TOKEN_MAX * 2];
    size_t len = 0;
    uint8_t mac[32];
    b64url(header, strlen(header), tok, sizeof(tok), &len);
    tok[len++] = '.';
    b64url(claims, strlen(claims), tok, sizeof(tok), &len);
    assert_int_equal(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                                     (const unsigned char *)secret, strlen(secret),
                                     (const unsigned char *)tok, len, mac),
                     0);
    tok[len++] = '.';
    b64url(mac, sizeof(mac), tok, sizeof(tok), &len);
    return tok;
}

static const char *sign(const char *claims)
{
    return sign_with(HS256, claims, SECRET);
}

static int connect_tok(const char *tok, struct jwt_claims **c)
{
    return jwt_verify_connect(&key, tok, strlen(tok), NOW, c);
}

static void assert_json(struct jwt_json j, const char *want)
{
    if (!want) {
        assert_null(j.p);
        assert_int_equal(j.len, 0);
        return;
    }
    assert_non_null(j.p);
    assert_int_equal(j.len, strlen(want));
    assert_memory_equal(j.p, want, j.len);
}

/* ---------------------------------------------------------------------------------------------
 * Known answers
 * -------------------------------------------------------------------------------------------*/

/*
 * Made with Python's standard library, independently of this code:
 *   python3 -c 'import hmac,hashlib,base64
 *   b=lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
 *   s=b(b"{\"alg\":\"HS256\",\"typ\":\"JWT\"}")+"."+b(CLAIMS)
 *   print(s+"."+b(hmac.new(b"ringcast-test-secret",s.encode(),hashlib.sha256).digest()))'
 * with CLAIMS = {"sub":"u1","exp":2000000000,"info":{"name":"Alice","score":0.1}}
 */
static const char ka_connect[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1MSIsImV4cCI6MjAwMDAwMDAwMCwiaW5mbyI6eyJuYW1lIjoiQWxpY2UiLCJzY29yZSI6MC4xfX0."
    "jAkSt3vyFLr0Kypd7p11TpZMg2BcEj7FTfDZlSW0KXQ";
/* The same command with CLAIMS = {"sub":"u1","channel":"$room","exp":2000000000,"info":{"n":1}} */
static const char ka_subscribe[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1MSIsImNoYW5uZWwiOiIkcm9vbSIsImV4cCI6MjAwMDAwMDAwMCwiaW5mbyI6eyJuIjoxfX0."
    "hC0SGRNoIF1Zo6gKTNt5Tjtj_lqk8puo6hOEaVSzoso";

static void known_answer_connect(void **state)
{
    (void)state;
    struct jwt_claims *c;
    assert_int_equal(connect_tok(ka_connect, &c), 0);
    assert_string_equal(c->sub, "u1");
    assert_int_equal(c->exp, 2000000000);
    assert_int_equal(jwt_expiry(c), 2000000000);
    /* Byte for byte: 0.1 is not re-encoded as 0.10000000000000001. */
    assert_json(c->info, "{\"name\":\"Alice\",\"score\":0.1}");
    assert_null(c->channel);
    assert_null(c->client);
    assert_int_equal(c->nr_subs, 0);
    jwt_claims_free(c);
    /* The same secret through the signing helper gives the same token. */
    assert_string_equal(
        sign("{\"sub\":\"u1\",\"exp\":2000000000,\"info\":{\"name\":\"Alice\",\"score\":0.1}}"),
        ka_connect);
}

static void known_answer_subscribe(void **state)
{
    (void)state;
    struct jwt_claims *c;
    assert_int_equal(jwt_verify_subscribe(&key, ka_subscribe, strlen(ka_subscribe), NOW, "$room", 5,
                                          "u1", "client-1", &c),
                     0);
    assert_string_equal(c->channel, "$room");
    assert_json(c->info, "{\"n\":1}");
    jwt_claims_free(c);
    /* A subscription token is not a connection token, and the reverse. */
    assert_int_equal(connect_tok(ka_subscribe, &c), -EBADMSG);
    assert_null(c);
    assert_int_equal(jwt_verify_subscribe(&key, ka_connect, strlen(ka_connect), NOW, "$room", 5,
                                          "u1", "client-1", &c),
                     -EBADMSG);
}

/* ---------------------------------------------------------------------------------------------
 * Connection tokens: one row per outcome
 * -------------------------------------------------------------------------------------------*/

struct row {
    const char *what;
    const char *header; /* NULL: HS256 */
    const char *claims; /* NULL: the token is <raw> */
    const char *raw;
    int want;
};

static const struct row connect_rows[] = {
    {"anonymous", NULL, "{}", NULL, 0},
    {"null claims read as absent", NULL, "{\"sub\":null,\"exp\":null,\"info\":null}", NULL, 0},
    {"exp one second ahead", NULL, "{\"sub\":\"u\",\"exp\":1900000001}", NULL, 0},
    {"exp now is expired", NULL, "{\"sub\":\"u\",\"exp\":1900000000}", NULL, -EKEYEXPIRED},
    {"exp past", NULL, "{\"sub\":\"u\",\"exp\":1}", NULL, -EKEYEXPIRED},
    {"exp 0 never expires", NULL, "{\"sub\":\"u\",\"exp\":0}", NULL, 0},
    {"exp as a real", NULL, "{\"exp\":1900000001.5}", NULL, 0},
    {"exp as a real, truncated", NULL, "{\"exp\":1900000000.9}", NULL, -EKEYEXPIRED},
    {"nbf now is valid", NULL, "{\"nbf\":1900000000}", NULL, 0},
    {"nbf ahead", NULL, "{\"nbf\":1900000001}", NULL, -EKEYEXPIRED},
    {"alg none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"u\"}", NULL, -ENOTSUP},
    {"alg HS512", "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "{}", NULL, -ENOTSUP},
    {"alg RS256", "{\"alg\":\"RS256\"}", "{}", NULL, -ENOTSUP},
    {"alg lower case", "{\"alg\":\"hs256\"}", "{}", NULL, -ENOTSUP},
    {"alg missing", "{\"typ\":\"JWT\"}", "{}", NULL, -ENOTSUP},
    {"alg not a string", "{\"alg\":256}", "{}", NULL, -EBADMSG},
    {"crit header", "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{}", NULL, -ENOTSUP},
    {"no typ is fine", "{\"alg\":\"HS256\"}", "{}", NULL, 0},
    {"header not JSON", "{alg:HS256}", "{}", NULL, -EBADMSG},
    {"header an array", "[\"HS256\"]", "{}", NULL, -EBADMSG},
    {"header duplicate alg", "{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", NULL, -EBADMSG},
    {"claims not JSON", NULL, "{\"sub\":", NULL, -EBADMSG},
    {"claims an array", NULL, "[]", NULL, -EBADMSG},
    {"claims duplicate sub", NULL, "{\"sub\":\"a\",\"sub\":\"b\"}", NULL, -EBADMSG},
    {"claims with NUL", NULL, "{\"sub\":\"a\\u0000b\"}", NULL, -EBADMSG},
    {"sub a number", NULL, "{\"sub\":1}", NULL, -EBADMSG},
    {"exp a string", NULL, "{\"exp\":\"1900000001\"}", NULL, -EBADMSG},
    {"exp too big", NULL, "{\"exp\":1e300}", NULL, -EBADMSG},
    {"channel claim", NULL, "{\"sub\":\"u\",\"channel\":\"c\"}", NULL, -EBADMSG},
    {"channels not an array", NULL, "{\"channels\":\"c\"}", NULL, -EBADMSG},
    {"channels with a number", NULL, "{\"channels\":[\"a\",1]}", NULL, -EBADMSG},
    {"channels with empty name", NULL, "{\"channels\":[\"\"]}", NULL, -EBADMSG},
    {"subs entry not an object", NULL, "{\"subs\":{\"a\":1}}", NULL, -EBADMSG},
    {"override not wrapped", NULL, "{\"subs\":{\"a\":{\"override\":{\"presence\":true}}}}", NULL,
     -EBADMSG},
    {"b64info not base64", NULL, "{\"b64info\":\"***\"}", NULL, -EBADMSG},
    {"b64info not JSON", NULL, "{\"b64info\":\"AAEC\"}", NULL, -EBADMSG},
    {"aud a number", NULL, "{\"aud\":1}", NULL, -EBADMSG},
    {"empty", NULL, NULL, "", -EBADMSG},
    {"one part", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9", -EBADMSG},
    {"two parts", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e30", -EBADMSG},
    {"four parts", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e30.AAAA.AAAA", -EBADMSG},
    {"padding", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e30=.AAAA", -EBADMSG},
    {"plain base64 alphabet", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e3+/.AAAA", -EBADMSG},
    {"lone base64 character", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e30.A", -EBADMSG},
    {"non-canonical last char", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e31.AAAA", -EBADMSG},
    {"short signature", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e30.AAAA", -EKEYREJECTED},
    {"empty signature", NULL, NULL, "eyJhbGciOiJIUzI1NiJ9.e30.", -EKEYREJECTED},
    {"none token, unsigned", NULL, NULL, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSJ9.",
     -ENOTSUP},
};

static void connect_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(connect_rows) / sizeof(connect_rows[0]); i++) {
        const struct row *r = &connect_rows[i];
        const char *tok =
            r->claims ? sign_with(r->header ? r->header : HS256, r->claims, SECRET) : r->raw;
        struct jwt_claims *c = (void *)1;
        int rc = connect_tok(tok, &c);
        if (rc != r->want)
            fail_msg("%s: got %d, want %d", r->what, rc, r->want);
        assert_true(rc == 0 ? c != NULL : c == NULL);
        jwt_claims_free(c);
    }
}

static void bad_signature(void **state)
{
    (void)state;
    struct jwt_claims *c;
    const char *claims = "{\"sub\":\"u1\"}";
    char tok[1024];

    /* Signed with another secret. */
    snprintf(tok, sizeof(tok), "%s", sign_with(HS256, claims, "another-secret"));
    assert_int_equal(connect_tok(tok, &c), -EKEYREJECTED);
    /* Each byte of the signature changed in turn (staying in the alphabet). */
    snprintf(tok, sizeof(tok), "%s", sign(claims));
    char *sig = strrchr(tok, '.') + 1;
    for (char *p = sig; *p; p++) {
        char keep = *p;
        *p = keep == 'A' ? 'B' : 'A';
        int rc = connect_tok(tok, &c);
        /* The last character also carries 2 padding bits; some changes make them non-zero. */
        assert_true(rc == -EKEYREJECTED || (rc == -EBADMSG && p[1] == '\0'));
        *p = keep;
    }
    /* Claims changed after signing: {"sub":"u2"}. */
    char *dot = strchr(tok, '.') + 1;
    size_t n = 0;
    char other[64];
    b64url("{\"sub\":\"u2\"}", 12, other, sizeof(other), &n);
    assert_int_equal(n, (size_t)(strrchr(tok, '.') - dot));
    memcpy(dot, other, n);
    assert_int_equal(connect_tok(tok, &c), -EKEYREJECTED);
    /* An empty secret still signs and verifies (HMAC allows it), but only with itself. */
    const struct jwt_key empty = {.secret = (const uint8_t *)"", .secret_len = 0};
    snprintf(tok, sizeof(tok), "%s", sign_with(HS256, claims, ""));
    assert_int_equal(jwt_verify_connect(&empty, tok, strlen(tok), NOW, &c), 0);
    jwt_claims_free(c);
    assert_int_equal(connect_tok(tok, &c), -EKEYREJECTED);
}

static void too_long(void **state)
{
    (void)state;
    char *claims = malloc(JWT_TOKEN_MAX + 64);
    assert_non_null(claims);
    /* Claims text whose token passes JWT_TOKEN_MAX: 3 base64 chars per 2... about 4/3. */
    int n = snprintf(claims, 64, "{\"sub\":\"");
    memset(claims + n, 'x', JWT_TOKEN_MAX * 3 / 4);
    strcpy(claims + n + JWT_TOKEN_MAX * 3 / 4, "\"}");
    static char big[JWT_TOKEN_MAX * 2];
    snprintf(big, sizeof(big), "%s", sign(claims));
    assert_true(strlen(big) > JWT_TOKEN_MAX);
    struct jwt_claims *c;
    assert_int_equal(connect_tok(big, &c), -EBADMSG);
    free(claims);
}

/* ---------------------------------------------------------------------------------------------
 * Claims copied out
 * -------------------------------------------------------------------------------------------*/

static void claims_copied(void **state)
{
    (void)state;
    struct jwt_claims *c;
    /* b64info is base64 of {"x": [1, 2]} and wins over info. */
    const char *tok =
        sign("{\"sub\":\"alice\",\"iat\":1800000000,\"exp\":1900000600,"
             "\"expire_at\":0,\"jti\":\"id\",\"info\":{\"a\":1},"
             "\"b64info\":\"eyJ4IjogWzEsIDJdfQ==\",\"meta\":[true, null],"
             "\"channels\":[\"news\",\"chat\",\"news\",\"alerts\"],"
             "\"subs\":{\"chat\":{\"info\":\"chan\",\"data\":{\"d\":12345678901234567890},"
             "\"override\":{\"presence\":{\"value\":false},"
             "\"force_recovery\":{\"value\":true}}},\"feed\":{}}}");
    assert_int_equal(connect_tok(tok, &c), 0);
    assert_string_equal(c->sub, "alice");
    assert_int_equal(c->iat, 1800000000);
    assert_int_equal(c->exp, 1900000600);
    assert_true(c->has_expire_at);
    assert_int_equal(c->expire_at, 0);
    assert_int_equal(jwt_expiry(c), 0); /* expire_at 0: the connection never expires */
    assert_json(c->info, "{\"x\": [1, 2]}");
    assert_json(c->meta, "[true, null]");
    assert_json(c->data, NULL);
    /* channels without those subs names (deduplicated), then subs in order. */
    assert_int_equal(c->nr_subs, 4);
    assert_string_equal(c->subs[0].channel, "news");
    assert_string_equal(c->subs[1].channel, "alerts");
    assert_string_equal(c->subs[2].channel, "chat");
    assert_string_equal(c->subs[3].channel, "feed");
    assert_json(c->subs[0].info, NULL);
    assert_int_equal(c->subs[0].override_set, 0);
    assert_json(c->subs[2].info, "\"chan\"");
    /* An integer beyond int64 passes through as written. */
    assert_json(c->subs[2].data, "{\"d\":12345678901234567890}");
    assert_int_equal(c->subs[2].override_set, JWT_OV_PRESENCE | JWT_OV_FORCE_RECOVERY);
    assert_int_equal(c->subs[2].override_value, JWT_OV_FORCE_RECOVERY);
    assert_json(c->subs[3].data, NULL);
    jwt_claims_free(c);
}

static void claims_escaped_key_and_spacing(void **state)
{
    (void)state;
    struct jwt_claims *c;
    /* jansson decodes "in\u0066o" as "info"; the raw text is found all the same. */
    assert_int_equal(
        connect_tok(sign("{ \"in\\u0066o\" :  { \"k\" : \"v\\\"\" } , \"sub\":\"\"}"), &c), 0);
    assert_json(c->info, "{ \"k\" : \"v\\\"\" }");
    assert_string_equal(c->sub, "");
    jwt_claims_free(c);
}

static void audience_and_issuer(void **state)
{
    (void)state;
    struct jwt_claims *c;
    struct jwt_key k = key;
    k.audience = "ringcast";
    k.issuer = "auth";
    static const struct {
        const char *claims;
        int want;
    } rows[] = {
        {"{\"aud\":\"ringcast\",\"iss\":\"auth\"}", 0},
        {"{\"aud\":[\"x\",\"ringcast\"],\"iss\":\"auth\"}", 0},
        {"{\"aud\":\"other\",\"iss\":\"auth\"}", -EACCES},
        {"{\"aud\":[],\"iss\":\"auth\"}", -EACCES},
        {"{\"iss\":\"auth\"}", -EACCES},
        {"{\"aud\":\"ringcast\",\"iss\":\"other\"}", -EACCES},
        {"{\"aud\":\"ringcast\"}", -EACCES},
        /* Time first: an expired token with a wrong audience is expired. */
        {"{\"aud\":\"other\",\"exp\":5}", -EKEYEXPIRED},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *tok = sign(rows[i].claims);
        int rc = jwt_verify_connect(&k, tok, strlen(tok), NOW, &c);
        if (rc != rows[i].want)
            fail_msg("%s: got %d, want %d", rows[i].claims, rc, rows[i].want);
        jwt_claims_free(c);
    }
    /* Not configured: not checked. */
    assert_int_equal(connect_tok(sign("{\"aud\":\"other\",\"iss\":\"x\"}"), &c), 0);
    jwt_claims_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * Subscription tokens
 * -------------------------------------------------------------------------------------------*/

static int sub_tok(const char *claims, const char *channel, const char *user, const char *client,
                   struct jwt_claims **c)
{
    const char *tok = sign(claims);
    return jwt_verify_subscribe(&key, tok, strlen(tok), NOW, channel, strlen(channel), user, client,
                                c);
}

static void subscribe_rules(void **state)
{
    (void)state;
    static const struct {
        const char *what, *claims, *channel, *user;
        int want;
    } rows[] = {
        {"match", "{\"sub\":\"u1\",\"channel\":\"$c\"}", "$c", "u1", 0},
        {"anonymous match", "{\"channel\":\"$c\"}", "$c", "", 0},
        {"client bound, same", "{\"sub\":\"u1\",\"channel\":\"$c\",\"client\":\"cl-1\"}", "$c",
         "u1", 0},
        {"client bound, other", "{\"sub\":\"u1\",\"channel\":\"$c\",\"client\":\"cl-2\"}", "$c",
         "u1", -EPERM},
        {"other channel", "{\"sub\":\"u1\",\"channel\":\"$d\"}", "$c", "u1", -EPERM},
        {"channel prefix", "{\"sub\":\"u1\",\"channel\":\"$c\"}", "$cc", "u1", -EPERM},
        {"other user", "{\"sub\":\"u2\",\"channel\":\"$c\"}", "$c", "u1", -EPERM},
        {"anonymous token, named user", "{\"channel\":\"$c\"}", "$c", "u1", -EPERM},
        {"no channel", "{\"sub\":\"u1\"}", "$c", "u1", -EBADMSG},
        {"channel null", "{\"sub\":\"u1\",\"channel\":null}", "$c", "u1", -EBADMSG},
        {"channel a number", "{\"sub\":\"u1\",\"channel\":7}", "$c", "u1", -EBADMSG},
        {"expired before mismatch", "{\"sub\":\"u2\",\"channel\":\"$d\",\"exp\":10}", "$c", "u1",
         -EKEYEXPIRED},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct jwt_claims *c;
        int rc = sub_tok(rows[i].claims, rows[i].channel, rows[i].user, "cl-1", &c);
        if (rc != rows[i].want)
            fail_msg("%s: got %d, want %d", rows[i].what, rc, rows[i].want);
        jwt_claims_free(c);
    }
}

static void subscribe_null_user_and_client(void **state)
{
    (void)state;
    struct jwt_claims *c;
    const char *tok = sign("{\"channel\":\"$c\"}");
    /* NULL user and client read as "": an anonymous connection. */
    assert_int_equal(jwt_verify_subscribe(&key, tok, strlen(tok), NOW, "$c", 2, NULL, NULL, &c), 0);
    jwt_claims_free(c);
    tok = sign("{\"channel\":\"$c\",\"client\":\"x\"}");
    assert_int_equal(jwt_verify_subscribe(&key, tok, strlen(tok), NOW, "$c", 2, NULL, NULL, &c),
                     -EPERM);
}

static void subscribe_claims(void **state)
{
    (void)state;
    struct jwt_claims *c;
    assert_int_equal(sub_tok("{\"sub\":\"u1\",\"channel\":\"$c\",\"exp\":1900000060,"
                             "\"info\":{\"role\":\"mod\"},\"b64data\":\"WzEsMiwzXQ==\","
                             "\"override\":{\"join_leave\":{\"value\":true}}}",
                             "$c", "u1", "cl-1", &c),
                     0);
    assert_json(c->info, "{\"role\":\"mod\"}");
    assert_json(c->data, "[1,2,3]");
    assert_int_equal(jwt_expiry(c), 1900000060);
    assert_int_equal(c->override_set, JWT_OV_JOIN_LEAVE);
    assert_int_equal(c->override_value, JWT_OV_JOIN_LEAVE);
    jwt_claims_free(c);
}

/* ---------------------------------------------------------------------------------------------
 * jwt_answer
 * -------------------------------------------------------------------------------------------*/

static void answers(void **state)
{
    (void)state;
    static const struct {
        enum jwt_use use;
        int err;
        uint32_t error;
        uint16_t close;
    } rows[] = {
        {JWT_USE_CONNECT, -EKEYEXPIRED, 109, 0},     {JWT_USE_CONNECT, -EKEYREJECTED, 0, 3500},
        {JWT_USE_CONNECT, -EBADMSG, 0, 3500},        {JWT_USE_CONNECT, -ENOTSUP, 0, 3500},
        {JWT_USE_CONNECT, -EACCES, 0, 3500},         {JWT_USE_CONNECT, -ENOMEM, 100, 0},
        {JWT_USE_REFRESH, -EKEYEXPIRED, 109, 0},     {JWT_USE_REFRESH, -EKEYREJECTED, 0, 3500},
        {JWT_USE_SUBSCRIBE, -EKEYEXPIRED, 109, 0},   {JWT_USE_SUBSCRIBE, -EKEYREJECTED, 103, 0},
        {JWT_USE_SUBSCRIBE, -EBADMSG, 103, 0},       {JWT_USE_SUBSCRIBE, -ENOTSUP, 103, 0},
        {JWT_USE_SUBSCRIBE, -EPERM, 0, 3500},        {JWT_USE_SUB_REFRESH, -EPERM, 0, 3500},
        {JWT_USE_SUB_REFRESH, -EKEYEXPIRED, 109, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint32_t e = 1;
        uint16_t cl = 1;
        jwt_answer(rows[i].use, rows[i].err, &e, &cl);
        assert_int_equal(e, rows[i].error);
        assert_int_equal(cl, rows[i].close);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_answer_connect),
        cmocka_unit_test(known_answer_subscribe),
        cmocka_unit_test(connect_table),
        cmocka_unit_test(bad_signature),
        cmocka_unit_test(too_long),
        cmocka_unit_test(claims_copied),
        cmocka_unit_test(claims_escaped_key_and_spacing),
        cmocka_unit_test(audience_and_issuer),
        cmocka_unit_test(subscribe_rules),
        cmocka_unit_test(subscribe_null_user_and_client),
        cmocka_unit_test(subscribe_claims),
        cmocka_unit_test(answers),
    };
    return cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
}
