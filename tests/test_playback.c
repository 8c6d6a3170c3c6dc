/* Check suite for playback's evidence bundles: minisign signatures (format,
 * round trip, every tampering refused, accepted by Debian's minisign) and
 * bundle verification against a manifest (hand-built zips: a changed,
 * missing or extra file, a wrong SHA256SUMS, a manifest not signed); and
 * the HLS playlist's per-segment cache (the same text with and without it,
 * cut ranges, eviction, a deleted segment). */
#include "archive/archive.h"
#include "core/errors.h"
#include "core/key.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

#include <check.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

static char g_base[64];
static char g_dir[128];
static vg_key_t g_key, g_other;

static void setup(void)
{
    char other[160];
    snprintf(g_dir, sizeof(g_dir), "%s/t-XXXXXX", g_base);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    ck_assert_int_eq(vg_key_load_or_create(g_dir, &g_key), VG_OK);
    snprintf(other, sizeof(other), "%s/other", g_dir);
    ck_assert_int_eq(vg_mkdir_p(other), VG_OK);
    ck_assert_int_eq(vg_key_load_or_create(other, &g_other), VG_OK);
}

static void teardown(void)
{
    vg_key_wipe(&g_key);
    vg_key_wipe(&g_other);
}

static const char g_msg[] = "{\"case\":\"C-1\"}\n";

static char *line(const char *text, int n)
{
    const char *p = text;
    for (int i = 0; i < n; i++)
        p = strchr(p, '\n') + 1;
    size_t len = strcspn(p, "\n");
    char *out = vg_malloc(len + 1);
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

START_TEST(test_sign_format)
{
    char *sig = pb_minisign_sign(&g_key, g_msg, strlen(g_msg), "c1", "timestamp:1\tfile:m");
    ck_assert_ptr_nonnull(sig);
    char *l0 = line(sig, 0), *l1 = line(sig, 1), *l2 = line(sig, 2), *l3 = line(sig, 3);
    ck_assert_str_eq(l0, "untrusted comment: c1");
    ck_assert_str_eq(l2, "trusted comment: timestamp:1\tfile:m");
    unsigned char blob[74], global[64];
    size_t got = 0;
    ck_assert_int_eq(sodium_base642bin(blob, sizeof(blob), l1, strlen(l1), NULL, &got, NULL,
                                       sodium_base64_VARIANT_ORIGINAL), 0);
    ck_assert_uint_eq(got, 74);
    ck_assert_int_eq(memcmp(blob, "ED", 2), 0);             /* prehashed */
    ck_assert_int_eq(memcmp(blob + 2, g_key.id, 8), 0);     /* key number */
    ck_assert_int_eq(sodium_base642bin(global, sizeof(global), l3, strlen(l3), NULL, &got, NULL,
                                       sodium_base64_VARIANT_ORIGINAL), 0);
    ck_assert_uint_eq(got, 64);
    /* the signature is over BLAKE2b-512 of the message */
    unsigned char h[64];
    crypto_generichash(h, sizeof(h), (const unsigned char *)g_msg, strlen(g_msg), NULL, 0);
    ck_assert_int_eq(crypto_sign_verify_detached(blob + 10, h, sizeof(h), g_key.pk), 0);
    /* ends with a newline, four lines exactly */
    ck_assert_int_eq(sig[strlen(sig) - 1], '\n');
    free(l0), free(l1), free(l2), free(l3);
    free(sig);
    /* comments with a newline would change the format: refused */
    ck_assert_ptr_null(pb_minisign_sign(&g_key, g_msg, strlen(g_msg), "a\nb", "t"));
    ck_assert_ptr_null(pb_minisign_sign(&g_key, g_msg, strlen(g_msg), "a", "t\n"));
}
END_TEST

START_TEST(test_verify_round_trip_and_tampering)
{
    char why[160];
    char *sig = pb_minisign_sign(&g_key, g_msg, strlen(g_msg), "u", "trusted text");
    ck_assert_int_eq(pb_minisign_verify(&g_key, g_msg, strlen(g_msg), sig, why, sizeof(why)),
                     VG_OK);
    /* a changed message */
    ck_assert_int_eq(pb_minisign_verify(&g_key, "x", 1, sig, why, sizeof(why)), VG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(why, "does not match"));
    /* another key */
    ck_assert_int_eq(pb_minisign_verify(&g_other, g_msg, strlen(g_msg), sig, why, sizeof(why)),
                     VG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(why, "another key"));
    /* a changed trusted comment */
    char *t = vg_strdup(sig);
    char *p = strstr(t, "trusted text");
    p[0] = 'T';
    ck_assert_int_eq(pb_minisign_verify(&g_key, g_msg, strlen(g_msg), t, why, sizeof(why)),
                     VG_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(why, "trusted comment"));
    free(t);
    /* garbage and truncation */
    ck_assert_int_eq(pb_minisign_verify(&g_key, g_msg, strlen(g_msg), "", why, sizeof(why)),
                     VG_ECORRUPT);
    t = vg_strdup(sig);
    t[strlen(t) / 2] = '\0';
    ck_assert_int_eq(pb_minisign_verify(&g_key, g_msg, strlen(g_msg), t, why, sizeof(why)),
                     VG_ECORRUPT);
    free(t);
    free(sig);
}
END_TEST

/* The legacy "Ed" form (Ed25519 over the message itself) is accepted too. */
START_TEST(test_verify_legacy_ed)
{
    unsigned char blob[74], global[64], part[64 + 2];
    char b1[120], b2[100], text[400], why[160];
    memcpy(blob, "Ed", 2);
    memcpy(blob + 2, g_key.id, 8);
    crypto_sign_detached(blob + 10, NULL, (const unsigned char *)g_msg, strlen(g_msg), g_key.sk);
    memcpy(part, blob + 10, 64);
    memcpy(part + 64, "tc", 2);
    crypto_sign_detached(global, NULL, part, sizeof(part), g_key.sk);
    sodium_bin2base64(b1, sizeof(b1), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(b2, sizeof(b2), global, sizeof(global), sodium_base64_VARIANT_ORIGINAL);
    snprintf(text, sizeof(text), "untrusted comment: x\n%s\ntrusted comment: tc\n%s\n", b1, b2);
    ck_assert_int_eq(pb_minisign_verify(&g_key, g_msg, strlen(g_msg), text, why, sizeof(why)),
                     VG_OK);
}
END_TEST

START_TEST(test_public_key_text_parses)
{
    char text[VG_KEY_PUB_TEXT_MAX];
    vg_key_t k;
    vg_key_public_text(&g_key, text, sizeof(text));
    ck_assert_int_eq(pb_minisign_parse_public(text, &k), VG_OK);
    ck_assert_int_eq(memcmp(k.pk, g_key.pk, 32), 0);
    ck_assert_int_eq(memcmp(k.id, g_key.id, 8), 0);
    ck_assert_int_eq(k.has_secret, 0);
    ck_assert_int_eq(pb_minisign_parse_public("untrusted comment: x\nAAAA\n", &k), VG_ECORRUPT);
    ck_assert_int_eq(pb_minisign_parse_public("", &k), VG_ECORRUPT);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* The independent check: Debian's minisign accepts what we sign. */
START_TEST(test_debian_minisign_accepts)
{
    if (system("command -v minisign >/dev/null 2>&1") != 0)
        return; /* scripts/deps.sh installs it; nothing to compare against without */
    char path[256], pub[VG_KEY_PUB_TEXT_MAX], cmd[800];
    char *sig = pb_minisign_sign(&g_key, g_msg, strlen(g_msg), "u", "timestamp:1\tfile:m.json");
    snprintf(path, sizeof(path), "%s/m.json", g_dir);
    write_file(path, g_msg);
    snprintf(path, sizeof(path), "%s/m.json.minisig", g_dir);
    write_file(path, sig);
    vg_key_public_text(&g_key, pub, sizeof(pub));
    snprintf(path, sizeof(path), "%s/k.pub", g_dir);
    write_file(path, pub);
    snprintf(cmd, sizeof(cmd), "cd %s && minisign -Vm m.json -p k.pub -q", g_dir);
    ck_assert_int_eq(system(cmd), 0);
    /* and refuses a changed message */
    snprintf(path, sizeof(path), "%s/m.json", g_dir);
    write_file(path, "{\"case\":\"C-2\"}\n");
    snprintf(cmd, sizeof(cmd), "cd %s && minisign -Vm m.json -p k.pub -q 2>/dev/null", g_dir);
    ck_assert_int_ne(system(cmd), 0);
    free(sig);
}
END_TEST

/* ---- bundle verification over hand-built zips ---- */

static void hex256(const char *data, size_t len, char out[65])
{
    struct sha256_ctx s;
    uint8_t d[32];
    sha256_init(&s);
    sha256_update(&s, len, (const uint8_t *)data);
    sha256_digest(&s, 32, d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

typedef struct {
    const char *media;      /* cam.mp4's bytes in the zip */
    const char *manifest_media; /* what the manifest says they are */
    int drop_sig, extra, bad_sums, sign_other, drop_verify;
} variant_t;

static const char g_verify_txt[] = "how to verify\n";

/* A bundle like pb_bundle_write's, with one thing changed per variant. */
static void make_zip(const char *path, const variant_t *v)
{
    char media_sha[65], verify_sha[65], man_sha[65], sums[512], pub[VG_KEY_PUB_TEXT_MAX];
    hex256(v->manifest_media, strlen(v->manifest_media), media_sha);
    hex256(g_verify_txt, strlen(g_verify_txt), verify_sha);
    json_t *m = json_pack("{ss s[{ss s{ss sI ss}}] s[{ss sI ss}]}", "format", PB_BUNDLE_FORMAT,
                          "sources", "name", "cam", "file", "name", "cam.mp4", "bytes",
                          (json_int_t)strlen(v->manifest_media), "sha256", media_sha, "files",
                          "name", PB_VERIFY_TXT, "bytes", (json_int_t)strlen(g_verify_txt),
                          "sha256", verify_sha);
    char *man = json_dumps(m, JSON_INDENT(2));
    json_decref(m);
    hex256(man, strlen(man), man_sha);
    char *sig = pb_minisign_sign(v->sign_other ? &g_other : &g_key, man, strlen(man), "u", "t");
    snprintf(sums, sizeof(sums), "%s  cam.mp4\n%s  " PB_MANIFEST "\n%s  " PB_VERIFY_TXT "\n%s",
             media_sha, man_sha, verify_sha, v->bad_sums ? "00  x\n" : "");
    vg_key_public_text(&g_key, pub, sizeof(pub));
    int err = 0;
    unlink(path);
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_EXCL, &err);
    ck_assert_ptr_nonnull(za);
    struct {
        const char *name, *data;
        int skip;
    } files[] = {{"cam.mp4", v->media, 0},
                 {PB_MANIFEST, man, 0},
                 {PB_MANIFEST_SIG, sig, v->drop_sig},
                 {PB_PUBKEY, pub, 0},
                 {PB_VERIFY_TXT, g_verify_txt, v->drop_verify},
                 {PB_SHA256SUMS, sums, 0},
                 {"extra.txt", "x", !v->extra}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i].skip)
            continue;
        zip_source_t *src = zip_source_buffer(za, files[i].data, strlen(files[i].data), 0);
        ck_assert_int_ge(zip_file_add(za, files[i].name, src, 0), 0);
    }
    ck_assert_int_eq(zip_close(za), 0);
    free(man);
    free(sig);
}

static int verify_variant(const variant_t *v, const char *want_why)
{
    char path[256], why[320];
    snprintf(path, sizeof(path), "%s/b.zip", g_dir);
    make_zip(path, v);
    int rc = pb_bundle_verify(path, NULL, why, sizeof(why), NULL);
    if (want_why)
        ck_assert_msg(strstr(why, want_why), "why '%s' lacks '%s'", why, want_why);
    return rc;
}

START_TEST(test_bundle_verify)
{
    variant_t ok = {.media = "media bytes", .manifest_media = "media bytes"};
    ck_assert_int_eq(verify_variant(&ok, NULL), VG_OK);

    variant_t v = ok;
    v.media = "media bytez";
    ck_assert_int_eq(verify_variant(&v, "cam.mp4 does not match"), VG_ECORRUPT);
    v = ok;
    v.drop_sig = 1;
    ck_assert_int_eq(verify_variant(&v, "manifest.json.minisig is missing"), VG_ECORRUPT);
    v = ok;
    v.extra = 1;
    ck_assert_int_eq(verify_variant(&v, "unexpected file in the bundle: extra.txt"), VG_ECORRUPT);
    v = ok;
    v.bad_sums = 1;
    ck_assert_int_eq(verify_variant(&v, "SHA256SUMS does not match"), VG_ECORRUPT);
    v = ok;
    v.sign_other = 1;
    ck_assert_int_eq(verify_variant(&v, "another key"), VG_ECORRUPT);
    v = ok;
    v.drop_verify = 1;
    ck_assert_int_eq(verify_variant(&v, "VERIFY.txt is missing"), VG_ECORRUPT);

    char why[160];
    char path[256];
    snprintf(path, sizeof(path), "%s/not-a-zip", g_dir);
    write_file(path, "hello");
    ck_assert_int_eq(pb_bundle_verify(path, NULL, why, sizeof(why), NULL), VG_EIO);
}
END_TEST

/* ---- the playlist cache ---- */

#define MIN_US (60LL * 1000000)
#define N_SEGS 20
#define N_FRAGS 60
#define T0 (1700000000LL * 1000000)

/* N_SEGS one-minute segments of N_FRAGS 1 s fragments (a keyframe every
 * other one) in a new index; ids[] gets their ids. */
static idx_t *playlist_index(int64_t *ids)
{
    char db[192];
    idx_t *idx = NULL;
    snprintf(db, sizeof(db), "%s/index.db", g_dir);
    ck_assert_int_eq(idx_open(db, 0, &idx), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "cam", "video"), VG_OK);
    arc_frag_t f[N_FRAGS];
    ck_assert_int_eq(idx_begin(idx), VG_OK); /* one commit, not one fsync a row */
    for (int i = 0; i < N_SEGS; i++) {
        int64_t off = 700;
        for (int k = 0; k < N_FRAGS; k++) {
            f[k] = (arc_frag_t){.offset = off, .size = 1000 + 37 * k + i, .start_us = k * 1000000LL,
                                .dur_us = 1000000, .key = k % 2 == 0};
            off += f[k].size;
        }
        uint8_t *blob = NULL;
        size_t len = 0;
        ck_assert_int_eq(arc_frags_encode(f, N_FRAGS, &blob, &len), VG_OK);
        idx_segment_t seg = {.start_us = T0 + i * MIN_US, .end_us = T0 + (i + 1) * MIN_US,
                             .media_us = MIN_US, .bytes = off, .init_bytes = 700};
        snprintf(seg.source, sizeof(seg.source), "cam");
        snprintf(seg.codecs, sizeof(seg.codecs), "h264");
        snprintf(seg.path, sizeof(seg.path), "media/cam/%d.mp4", i);
        for (int c = 0; c < 64; c++)
            seg.sha256[c] = "0123456789abcdef"[(i + c) % 16];
        ck_assert_int_eq(idx_segment_insert_frags(idx, &seg, blob, len), VG_OK);
        ids[i] = seg.id;
        free(blob);
    }
    ck_assert_int_eq(idx_commit(idx), VG_OK);
    return idx;
}

/* The playlist of [from, to) through pb equals the one made without a
 * cache, twice (made, then from the cache). */
static void same_playlist(pb_t *pb, idx_t *idx, int64_t from, int64_t to)
{
    char *want = NULL, *got = NULL;
    size_t want_len = 0, got_len = 0, want_n = 0, got_n = 0;
    ck_assert_int_eq(pb_playlist(NULL, idx, g_dir, "cam", from, to, 0, &want, &want_len, &want_n),
                     VG_OK);
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(pb_playlist(pb, idx, g_dir, "cam", from, to, 0, &got, &got_len, &got_n),
                         VG_OK);
        ck_assert_uint_eq(got_n, want_n);
        ck_assert_uint_eq(got_len, want_len);
        ck_assert_int_eq(memcmp(got, want, want_len), 0);
        free(got);
    }
    free(want);
}

START_TEST(test_playlist_cache_same_text)
{
    int64_t ids[N_SEGS];
    idx_t *idx = playlist_index(ids);
    /* 1 MiB holds every segment; 40 KiB about half (an entry is ~4 KiB):
     * the oldest go while later ones come in */
    size_t bounds[] = {1u << 20, 40u << 10};
    for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++) {
        pb_config_t cfg = {.data_dir = g_dir, .snapshot_workers = 1,
                           .playlist_cache_bytes = bounds[b]};
        pb_t *pb = NULL;
        ck_assert_int_eq(pb_open(&cfg, &pb), VG_OK);
        same_playlist(pb, idx, T0, T0 + N_SEGS * MIN_US);
        /* cut at both ends: from between keyframes, to inside a segment */
        same_playlist(pb, idx, T0 + 2 * MIN_US + 30500000, T0 + 9 * MIN_US + 10000000);
        /* then the whole range again: the cut segments' text was not kept
         * as if whole */
        same_playlist(pb, idx, T0, T0 + N_SEGS * MIN_US);
        /* a range inside one segment, at a keyframe and between two */
        same_playlist(pb, idx, T0 + 5 * MIN_US + 2000000, T0 + 5 * MIN_US + 3000000);
        same_playlist(pb, idx, T0 + 5 * MIN_US + 3000000, T0 + 5 * MIN_US + 3500000);
        pb_close(pb);
    }
    idx_close(idx);
}
END_TEST

START_TEST(test_playlist_cache_deleted_segment)
{
    int64_t ids[N_SEGS];
    idx_t *idx = playlist_index(ids);
    pb_config_t cfg = {.data_dir = g_dir, .snapshot_workers = 1, .playlist_cache_bytes = 1u << 20};
    pb_t *pb = NULL;
    ck_assert_int_eq(pb_open(&cfg, &pb), VG_OK);
    same_playlist(pb, idx, T0, T0 + N_SEGS * MIN_US); /* every segment cached */
    /* phase one of the two-phase delete: the row is marked */
    idx_segment_frags_t s;
    ck_assert_int_eq(idx_segment_get(idx, ids[3], &s), VG_OK);
    free(s.frags);
    int64_t run = 0;
    ck_assert_int_eq(idx_record_destruction(idx, T0 + 100 * MIN_US, "test", &s.seg, 1, INT64_MAX,
                                            NULL, &run),
                     VG_OK);
    ck_assert_int_ne(run, 0);
    char *text = NULL, uri[32];
    size_t len = 0, n = 0;
    ck_assert_int_eq(pb_playlist(pb, idx, g_dir, "cam", T0, T0 + N_SEGS * MIN_US, 0, &text, &len,
                                 &n),
                     VG_OK);
    ck_assert_uint_eq(n, N_SEGS - 1);
    snprintf(uri, sizeof(uri), "media/%lld\n", (long long)ids[3]);
    ck_assert_ptr_null(memmem(text, len, uri, strlen(uri)));
    snprintf(uri, sizeof(uri), "media/%lld\n", (long long)ids[4]);
    ck_assert_ptr_nonnull(memmem(text, len, uri, strlen(uri)));
    free(text);
    same_playlist(pb, idx, T0, T0 + N_SEGS * MIN_US);
    pb_close(pb);
    idx_close(idx);
}
END_TEST

static Suite *playback_suite(void)
{
    Suite *s = suite_create("playback");
    TCase *tc = tcase_create("minisign");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sign_format);
    tcase_add_test(tc, test_verify_round_trip_and_tampering);
    tcase_add_test(tc, test_verify_legacy_ed);
    tcase_add_test(tc, test_public_key_text_parses);
    tcase_add_test(tc, test_debian_minisign_accepts);
    suite_add_tcase(s, tc);
    tc = tcase_create("bundle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bundle_verify);
    suite_add_tcase(s, tc);
    tc = tcase_create("playlist");
    tcase_set_timeout(tc, 30); /* an index with fsyncs, on a loaded machine */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_playlist_cache_same_text);
    tcase_add_test(tc, test_playlist_cache_deleted_segment);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    snprintf(g_base, sizeof(g_base), "/tmp/vigil-test-playback-XXXXXX");
    if (!mkdtemp(g_base)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    vg_log_set_level(VG_LOG_ERR);
    SRunner *sr = srunner_create(playback_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_base);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_base);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
