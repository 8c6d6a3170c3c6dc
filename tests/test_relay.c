/* Check suite for relay/: the pure helpers (codecs, parameter sets,
 * URLs fit for logs), who may watch what, RTSP credentials against
 * a real index (password, token as password, Bearer, throttling, audit), and
 * that a push whose central point is down never blocks the capture thread. */
#include "relay/relay_private.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "core/errors.h"
#include "core/util.h"
#include "web/web.h"

/* ---- codecs and parameter sets ---- */

static const uint8_t au_with_params[] = {
    0, 0, 0, 1, 0x09, 0xf0,             /* AUD */
    0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1e, /* SPS */
    0, 0, 0, 1, 0x68, 0xce,             /* PPS */
    0, 0, 1, 0x65, 0x88, 0x84,          /* IDR slice */
};
static const uint8_t au_idr_only[] = {0, 0, 0, 1, 0x06, 0x05, 0x01, 0, 0, 1, 0x65, 0x88};
static const uint8_t au_sps_after_slice[] = {0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x67, 0x42};
static const uint8_t hevc_with_params[] = {
    0, 0, 0, 1, 0x40, 0x01, 0x0c, /* VPS (32) */
    0, 0, 0, 1, 0x42, 0x01, 0x01, /* SPS (33) */
    0, 0, 0, 1, 0x26, 0x01, 0xaf, /* IDR_W_RADL (19) */
};

START_TEST(test_codecs)
{
    ck_assert_int_eq(rly_codec_of(AV_CODEC_ID_H264), RLY_C_H264);
    ck_assert_int_eq(rly_codec_of(AV_CODEC_ID_HEVC), RLY_C_H265);
    ck_assert_int_eq(rly_codec_of(AV_CODEC_ID_PCM_ALAW), RLY_C_PCMA);
    ck_assert_int_eq(rly_codec_of(AV_CODEC_ID_MJPEG), RLY_C_NONE);
    ck_assert(rly_codec_is_video(RLY_C_H265));
    ck_assert(!rly_codec_is_video(RLY_C_OPUS));
}
END_TEST

START_TEST(test_parameter_sets)
{
    ck_assert(rly_au_has_params(RLY_C_H264, au_with_params, sizeof(au_with_params)));
    ck_assert(!rly_au_has_params(RLY_C_H264, au_idr_only, sizeof(au_idr_only)));
    ck_assert(!rly_au_has_params(RLY_C_H264, au_sps_after_slice, sizeof(au_sps_after_slice)));
    ck_assert(rly_au_has_params(RLY_C_H265, hevc_with_params, sizeof(hevc_with_params)));
    ck_assert(!rly_au_has_params(RLY_C_H265, hevc_with_params + 14, sizeof(hevc_with_params) - 14));
    ck_assert(!rly_au_has_params(RLY_C_H264, au_with_params, 3));
    ck_assert(rly_is_annexb(au_with_params, sizeof(au_with_params)));
    ck_assert(!rly_is_annexb((const uint8_t *)"\x01\x42\x00", 3));
    ck_assert(!rly_is_annexb(NULL, 0));
}
END_TEST

START_TEST(test_url_for_log)
{
    char out[128];
    rly_url_for_log("rtsp://user:pw@central:8554/office/hall-1", out, sizeof(out));
    ck_assert_str_eq(out, "rtsp://***@central:8554/office/hall-1");
    rly_url_for_log("srt://central:9000?mode=caller&passphrase=topsecret1", out, sizeof(out));
    ck_assert_str_eq(out, "srt://central:9000?***");
}
END_TEST

/* ---- who may watch ---- */

START_TEST(test_may_watch)
{
    rly_principal_t who = {.perms = WEB_PERM_LIVE, .all_sources = 1};
    ck_assert(rly_may_watch(&who, "hall-1", VG_SOURCE_VIDEO));
    ck_assert(!rly_may_watch(&who, "line-1", VG_SOURCE_AUDIO)); /* calls need `calls` */
    who.perms |= WEB_PERM_CALLS;
    ck_assert(rly_may_watch(&who, "line-1", VG_SOURCE_AUDIO));
    who.all_sources = 0;
    snprintf(who.sources, sizeof(who.sources), "hall-10,hall-2");
    ck_assert(!rly_may_watch(&who, "hall-1", VG_SOURCE_VIDEO));
    ck_assert(rly_may_watch(&who, "hall-2", VG_SOURCE_VIDEO));
    who.perms = WEB_PERM_PLAYBACK | WEB_PERM_CALLS; /* an auditor: no live */
    ck_assert(!rly_may_watch(&who, "hall-2", VG_SOURCE_VIDEO));
    who.perms = WEB_PERM_ADMIN;
    ck_assert(rly_may_watch(&who, "hall-2", VG_SOURCE_AUDIO));
}
END_TEST

/* ---- credentials against an index ---- */

static char dir[64];
static char db[96];
static idx_t *idx;
static rly_creds_t *creds;

static void creds_setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/vigil-test-relay-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/index.db", dir);
    ck_assert_int_eq(idx_open(db, 0, &idx), VG_OK);
    ck_assert_int_eq(rly_creds_open(db, &vg_system_clock, &creds), VG_OK);
}

static void creds_teardown(void)
{
    rly_creds_close(creds);
    idx_close(idx);
    char *cmd = vg_asprintf("rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
}

static char *basic(const char *user, const char *pw)
{
    char *plain = vg_asprintf("%s:%s", user, pw);
    char *b64 = g_base64_encode((const guchar *)plain, strlen(plain));
    char *header = vg_asprintf("Basic %s", b64);
    g_free(b64);
    free(plain);
    return header;
}

static void add_account(const char *name, const char *role, const char *sources)
{
    idx_account_t a = {0};
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "%s", role);
    ck_assert_int_eq(web_password_hash("correct horse battery", a.pwhash), VG_OK);
    a.all_sources = sources == NULL;
    const char *list[1] = {sources};
    ck_assert_int_eq(idx_account_add(idx, &a, list, sources ? 1 : 0), VG_OK);
}

static int check(const char *header, rly_principal_t *who)
{
    return rly_creds_check(creds, header, "10.0.0.9", who);
}

START_TEST(test_password)
{
    rly_principal_t who;
    add_account("guard", "security", "hall-1");
    char *good = basic("guard", "correct horse battery");
    char *bad = basic("guard", "wrong horse battery");
    char *nobody = basic("nobody", "correct horse battery");
    ck_assert_int_eq(check(good, &who), VG_OK);
    ck_assert_str_eq(who.actor, "user:guard");
    ck_assert(rly_may_watch(&who, "hall-1", VG_SOURCE_VIDEO));
    ck_assert(!rly_may_watch(&who, "hall-2", VG_SOURCE_VIDEO));
    /* a remembered header answers at once */
    ck_assert_int_eq(check(good, &who), VG_OK);
    ck_assert_int_eq(check(bad, &who), VG_ENOTFOUND);
    ck_assert_int_eq(check(nobody, &who), VG_ENOTFOUND);
    ck_assert_int_eq(check("Basic !!!not-base64", &who), VG_ENOTFOUND);
    ck_assert_int_eq(check("Digest username=x", &who), VG_ENOTFOUND);
    ck_assert_int_eq(check(NULL, &who), VG_ENOTFOUND);
    free(good);
    free(bad);
    free(nobody);
}
END_TEST

START_TEST(test_throttled_after_failures)
{
    rly_principal_t who;
    add_account("alice", "admin", NULL);
    for (int i = 0; i < 5; i++) {
        char pw[32];
        snprintf(pw, sizeof(pw), "wrong password %d", i);
        char *h = basic("alice", pw);
        ck_assert_int_eq(check(h, &who), VG_ENOTFOUND);
        free(h);
    }
    char *good = basic("alice", "correct horse battery");
    ck_assert_int_eq(check(good, &who), VG_EBUSY);
    free(good);
}
END_TEST

START_TEST(test_token)
{
    rly_principal_t who;
    char secret[WEB_TOKEN_TEXT_MAX];
    int64_t id = 0;
    ck_assert_int_eq(web_token_create(idx, "central", WEB_PERM_LIVE, "test", 1, secret, &id),
                     VG_OK);
    char *as_password = basic("whoever", secret);
    char *bearer = vg_asprintf("Bearer %s", secret);
    ck_assert_int_eq(check(as_password, &who), VG_OK);
    char actor[32];
    snprintf(actor, sizeof(actor), "token:%lld", (long long)id);
    ck_assert_str_eq(who.actor, actor);
    ck_assert(rly_may_watch(&who, "any-hall", VG_SOURCE_VIDEO));
    ck_assert(!rly_may_watch(&who, "line-1", VG_SOURCE_AUDIO));
    ck_assert_int_eq(check(bearer, &who), VG_OK);
    ck_assert_int_eq(idx_token_revoke(idx, id, 2), VG_OK);
    char *other = vg_asprintf("Bearer %sx", secret); /* not cached, not valid */
    ck_assert_int_eq(check(other, &who), VG_ENOTFOUND);
    free(as_password);
    free(bearer);
    free(other);
}
END_TEST

/* A remembered login ends with the accounts generation, and a live
 * session's principal is re-checked against the index without its secret. */
START_TEST(test_revocation_recheck)
{
    rly_principal_t who, tok, now;
    int changed = 0;
    char secret[WEB_TOKEN_TEXT_MAX];
    int64_t id = 0;
    add_account("guard", "security", "hall-1");
    ck_assert_int_eq(web_token_create(idx, "central", WEB_PERM_LIVE, "test", 1, secret, &id),
                     VG_OK);
    ck_assert_int_eq(rly_creds_poll(creds, &changed), VG_OK);
    ck_assert_int_eq(changed, 0); /* the first reading is the reference */
    char *good = basic("guard", "correct horse battery");
    char *bearer = vg_asprintf("Bearer %s", secret);
    ck_assert_int_eq(check(good, &who), VG_OK);
    ck_assert_int_eq(check(bearer, &tok), VG_OK);
    ck_assert_int_eq(rly_creds_recheck(creds, &who, &now), VG_OK);
    ck_assert(rly_may_watch(&now, "hall-1", VG_SOURCE_VIDEO));
    ck_assert_int_eq(rly_creds_recheck(creds, &tok, &now), VG_OK);
    ck_assert_int_eq(rly_creds_poll(creds, &changed), VG_OK);
    ck_assert_int_eq(changed, 0);

    /* the source list changes: still a valid login, no longer hall-1 */
    const char *other[] = {"hall-2"};
    ck_assert_int_eq(idx_account_update(idx, "guard", NULL, NULL, IDX_SOURCES_LIST, other, 1),
                     VG_OK);
    ck_assert(rly_creds_current(creds, &who));
    ck_assert_int_eq(rly_creds_poll(creds, &changed), VG_OK);
    ck_assert_int_eq(changed, 1);
    ck_assert(!rly_creds_current(creds, &who)); /* checked before the change */
    ck_assert_int_eq(rly_creds_recheck(creds, &who, &now), VG_OK);
    ck_assert(rly_creds_current(creds, &now));
    ck_assert(!rly_may_watch(&now, "hall-1", VG_SOURCE_VIDEO));
    ck_assert(rly_may_watch(&now, "hall-2", VG_SOURCE_VIDEO));

    /* a new password (even the same one, salted anew) ends the old login */
    char hash[128];
    ck_assert_int_eq(web_password_hash("correct horse battery", hash), VG_OK);
    ck_assert_int_eq(idx_account_update(idx, "guard", NULL, hash, IDX_SOURCES_KEEP, NULL, 0),
                     VG_OK);
    ck_assert_int_eq(rly_creds_recheck(creds, &who, &now), VG_ENOTFOUND);

    /* a revoked token: its remembered header is forgotten at the next poll */
    ck_assert_int_eq(rly_creds_poll(creds, &changed), VG_OK);
    ck_assert_int_eq(check(bearer, &tok), VG_OK); /* remembered again */
    ck_assert_int_eq(idx_token_revoke(idx, id, 2), VG_OK);
    ck_assert_int_eq(rly_creds_recheck(creds, &tok, &now), VG_ENOTFOUND);
    ck_assert_int_eq(check(bearer, &tok), VG_OK); /* still remembered... */
    ck_assert_int_eq(rly_creds_poll(creds, &changed), VG_OK);
    ck_assert_int_eq(changed, 1);
    ck_assert_int_eq(check(bearer, &tok), VG_ENOTFOUND); /* ...until the poll */

    ck_assert_int_eq(idx_account_delete(idx, "guard"), VG_OK);
    ck_assert_int_eq(rly_creds_recheck(creds, &who, &now), VG_ENOTFOUND);
    free(good);
    free(bearer);
}
END_TEST

/* Fills a source name up to its longest (63): prefix "x00-" and 59 more. */
#define FILL59 "00000000000000000000000000000000000000000000000000000000000"

/* 64 names of 63 characters are held whole; none grants a prefix of itself. */
START_TEST(test_long_source_list)
{
    rly_principal_t who;
    char names[IDX_LIST_MAX][64];
    const char *list[IDX_LIST_MAX];
    for (int i = 0; i < IDX_LIST_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "a%02u-%s", (unsigned)i % 100u, FILL59);
        ck_assert_uint_eq(strlen(names[i]), 63);
        list[i] = names[i];
    }
    idx_account_t a = {0};
    snprintf(a.name, sizeof(a.name), "many");
    snprintf(a.role, sizeof(a.role), "security");
    ck_assert_int_eq(web_password_hash("correct horse battery", a.pwhash), VG_OK);
    ck_assert_int_eq(idx_account_add(idx, &a, list, IDX_LIST_MAX), VG_OK);
    char *good = basic("many", "correct horse battery");
    ck_assert_int_eq(check(good, &who), VG_OK);
    for (int i = 0; i < IDX_LIST_MAX; i++)
        ck_assert(rly_may_watch(&who, names[i], VG_SOURCE_VIDEO));
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "%.62s", names[IDX_LIST_MAX - 1]);
    ck_assert(!rly_may_watch(&who, prefix, VG_SOURCE_VIDEO));
    free(good);
}
END_TEST

START_TEST(test_audit_row)
{
    rly_audit_t a = {.actor = "user:guard", .ip = "10.0.0.9", .action = "relay.stop",
                     .source = "hall-1", .result = "ok", .detail = "duration_s=12.5",
                     .from_us = 1000, .to_us = 13501000};
    ck_assert_int_eq(rly_creds_audit(creds, &a), VG_OK);
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX, .action = "relay.stop"};
    idx_audit_t *rows = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_audit_list(idx, &f, &rows, &n), VG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(rows[0].object, "source:hall-1");
    ck_assert_str_eq(rows[0].ip, "10.0.0.9");
    ck_assert_int_eq(rows[0].to_us, 13501000);
    free(rows);
}
END_TEST

/* ---- a push never blocks the capture thread ---- */

static const uint8_t sps_pps[] = {0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1e, 0, 0, 0, 1, 0x68, 0xce};

START_TEST(test_push_down_never_blocks)
{
    vg_config_t cfg = {0};
    vg_source_config_t src = {.name = "hall-1", .relay = 1,
                              .push = "rtsp://127.0.0.1:1/office/{source}"};
    cfg.relay.rtsp_listen = "";
    cfg.relay.max_clients = 4;
    cfg.relay.max_clients_per_ip = 2;
    rly_server_config_t sc = {.cfg = &cfg, .data_dir = dir, .clock = &vg_system_clock};
    rly_server_t *srv = NULL;
    rly_feed_t *feed = NULL;
    ck_assert_int_eq(rly_server_start(&sc, &srv), VG_OK);
    ck_assert_int_eq(rly_server_port(srv), 0);
    ck_assert_int_eq(rly_feed_open(srv, &cfg, &src, &feed), VG_OK);
    ck_assert_ptr_nonnull(feed);

    AVFormatContext *ic = avformat_alloc_context();
    AVStream *st = avformat_new_stream(ic, NULL);
    st->time_base = (AVRational){1, 90000};
    st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
    st->codecpar->codec_id = AV_CODEC_ID_H264;
    st->codecpar->width = 1920;
    st->codecpar->height = 1080;
    st->codecpar->extradata = av_mallocz(sizeof(sps_pps) + AV_INPUT_BUFFER_PADDING_SIZE);
    memcpy(st->codecpar->extradata, sps_pps, sizeof(sps_pps));
    st->codecpar->extradata_size = sizeof(sps_pps);
    ck_assert_int_eq(rly_feed_begin(feed, ic->streams, ic->nb_streams), VG_OK);

    AVPacket *pkt = av_packet_alloc();
    ck_assert_int_eq(av_new_packet(pkt, 20000), 0);
    memset(pkt->data, 0x11, (size_t)pkt->size);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 20000; i++) { /* 800 s of 25 fps, 400 MB: far over any queue */
        pkt->pts = pkt->dts = (int64_t)i * 3600;
        pkt->flags = i % 25 == 0 ? AV_PKT_FLAG_KEY : 0;
        ck_assert_int_eq(rly_feed_packet(feed, pkt, 0), VG_OK);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(took < 2.0, "20000 packets took %.2f s", took);
    rly_feed_end(feed);

    rly_status_t rs;
    for (int i = 0; i < 100; i++) { /* the failed connect shows within a few seconds */
        ck_assert_int_eq(rly_feed_status(feed, &rs), VG_OK);
        if (strcmp(rs.push_state, "waiting") == 0)
            break;
        usleep(50 * 1000);
    }
    ck_assert(rs.push_configured);
    ck_assert_str_eq(rs.push_state, "waiting");
    ck_assert_ptr_nonnull(strstr(rs.push_last_error, "connect failed"));
    ck_assert_int_eq(rs.push_bytes, 0);
    ck_assert(!rs.mounted);
    av_packet_free(&pkt);
    avformat_free_context(ic);
    rly_feed_close(feed);
    rly_server_stop(srv);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, test_codecs);
    tcase_add_test(pure, test_parameter_sets);
    tcase_add_test(pure, test_url_for_log);
    tcase_add_test(pure, test_may_watch);
    suite_add_tcase(s, pure);
    TCase *db_case = tcase_create("creds");
    tcase_add_checked_fixture(db_case, creds_setup, creds_teardown);
    tcase_set_timeout(db_case, 60);
    tcase_add_test(db_case, test_password);
    tcase_add_test(db_case, test_throttled_after_failures);
    tcase_add_test(db_case, test_token);
    tcase_add_test(db_case, test_revocation_recheck);
    tcase_add_test(db_case, test_long_source_list);
    tcase_add_test(db_case, test_audit_row);
    tcase_add_test(db_case, test_push_down_never_blocks);
    suite_add_tcase(s, db_case);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(relay_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
