/* Private keys sealed for the database (store/pg_crypt.c): a round trip,
 * and every way a blob must not open: tampered anywhere, bound to another
 * certificate name or generation, opened with another key; plus the key
 * file formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/pg_internal.h"
#include "util/err.h"

#define HEX_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define PEM                                                                                        \
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END "     \
    "PRIVATE KEY-----\n"

static void key(const char *hex, struct pg_key *k)
{
    assert_int_equal(pg_key_parse(hex, strlen(hex), k), 0);
}

static void seal(const struct pg_key *k, uint8_t **blob, size_t *len)
{
    assert_int_equal(
        pg_seal(k, "www", "20261207T021500Z", (const uint8_t *)PEM, strlen(PEM), blob, len), 0);
    assert_int_equal(*len, strlen(PEM) + PG_SEAL_OVERHEAD);
}

static void test_round_trip_and_no_plaintext_in_blob(void **state)
{
    (void)state;
    struct pg_key k;
    uint8_t *blob, *pt;
    size_t len, ptlen;

    key(HEX_A, &k);
    seal(&k, &blob, &len);
    assert_null(memmem(blob, len, "PRIVATE KEY", 11));
    assert_int_equal(pg_unseal(&k, "www", "20261207T021500Z", blob, len, &pt, &ptlen), 0);
    assert_int_equal(ptlen, strlen(PEM));
    assert_string_equal((char *)pt, PEM);
    free(pt);
    /* two seals of the same key differ (fresh nonce) */
    uint8_t *blob2;
    size_t len2;
    seal(&k, &blob2, &len2);
    assert_int_not_equal(memcmp(blob, blob2, len), 0);
    free(blob2);
    free(blob);
    pg_key_wipe(&k);
}

static void test_tampered_blob_is_refused(void **state)
{
    (void)state;
    struct pg_key k;
    uint8_t *blob, *pt = NULL;
    size_t len, ptlen;

    key(HEX_A, &k);
    seal(&k, &blob, &len);
    /* every byte after the header: nonce, ciphertext, tag */
    for (size_t i = 4 + 8; i < len; i++) {
        blob[i] ^= 0x01;
        assert_int_equal(pg_unseal(&k, "www", "20261207T021500Z", blob, len, &pt, &ptlen),
                         ERR_CRYPTO);
        assert_null(pt);
        blob[i] ^= 0x01;
    }
    /* cut short, or not a blob at all */
    assert_int_equal(pg_unseal(&k, "www", "20261207T021500Z", blob, len - 1, &pt, &ptlen),
                     ERR_CRYPTO);
    assert_int_equal(pg_unseal(&k, "www", "20261207T021500Z", blob, 20, &pt, &ptlen), ERR_PARSE);
    blob[0] = 'X';
    assert_int_equal(pg_unseal(&k, "www", "20261207T021500Z", blob, len, &pt, &ptlen), ERR_PARSE);
    free(blob);
}

static void test_other_name_or_generation_is_refused(void **state)
{
    (void)state;
    struct pg_key k;
    uint8_t *blob, *pt = NULL;
    size_t len, ptlen;

    key(HEX_A, &k);
    seal(&k, &blob, &len);
    assert_int_equal(pg_unseal(&k, "api", "20261207T021500Z", blob, len, &pt, &ptlen), ERR_CRYPTO);
    assert_int_equal(pg_unseal(&k, "www", "20261207T021501Z", blob, len, &pt, &ptlen), ERR_CRYPTO);
    /* the separator: ("www2", "0261207T021500Z") is not ("www", "20261207T021500Z") */
    assert_int_equal(pg_unseal(&k, "www2", "0261207T021500Z", blob, len, &pt, &ptlen), ERR_CRYPTO);
    assert_null(pt);
    free(blob);
}

static void test_wrong_key_is_named(void **state)
{
    (void)state;
    struct pg_key a, b;
    uint8_t *blob, *pt = NULL;
    size_t len, ptlen;

    key(HEX_A, &a);
    key(HEX_B, &b);
    assert_int_not_equal(memcmp(a.id, b.id, sizeof(a.id)), 0);
    seal(&a, &blob, &len);
    assert_int_equal(pg_unseal(&b, "www", "20261207T021500Z", blob, len, &pt, &ptlen),
                     -EKEYREJECTED);
    /* a forged key id does not help: the tag still fails */
    memcpy(blob + 4, b.id, sizeof(b.id));
    assert_int_equal(pg_unseal(&b, "www", "20261207T021500Z", blob, len, &pt, &ptlen), ERR_CRYPTO);
    assert_null(pt);
    free(blob);
}

static void test_key_formats(void **state)
{
    (void)state;
    struct pg_key hex, b64;
    /* the same 32 bytes as HEX_A, in base64 */
    const char *b64text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";

    assert_int_equal(pg_key_parse(HEX_A "\n", strlen(HEX_A) + 1, &hex), 0);
    assert_int_equal(pg_key_parse(b64text, strlen(b64text), &b64), 0);
    assert_memory_equal(hex.key, b64.key, PG_KEY_LEN);
    assert_memory_equal(hex.id, b64.id, sizeof(hex.id));
    struct pg_key k;
    assert_int_equal(pg_key_parse(HEX_A, 63, &k), -EINVAL); /* short */
    char nothex[] = HEX_A;
    nothex[10] = 'g';
    assert_int_equal(pg_key_parse(nothex, 64, &k), -EINVAL);    /* not hex */
    assert_int_equal(pg_key_parse("c2VjcmV0", 8, &k), -EINVAL); /* 6 bytes */
    assert_int_equal(pg_key_parse("", 0, &k), -EINVAL);
    assert_int_equal(pg_key_parse("AAEC AwQF", 9, &k), -EINVAL);

    char path[] = "/tmp/certloop-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, HEX_A "\n", 65), 65);
    close(fd);
    assert_int_equal(pg_key_load(path, &k), 0);
    assert_memory_equal(k.key, hex.key, PG_KEY_LEN);
    unlink(path);
    assert_int_equal(pg_key_load(path, &k), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_no_plaintext_in_blob),
        cmocka_unit_test(test_tampered_blob_is_refused),
        cmocka_unit_test(test_other_name_or_generation_is_refused),
        cmocka_unit_test(test_wrong_key_is_named),
        cmocka_unit_test(test_key_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
