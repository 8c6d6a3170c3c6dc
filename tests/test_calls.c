/* Check suite for calls: number normalization (a table), channel to line
 * matching, and the SQL of index/calls.c against a real SQLite file: the
 * idempotent upsert, partial updates, every search filter with the cursor,
 * FTS5 text, the announcement fields, holds by call, the metadata sweep,
 * and the query plans of the searches (indexes, not scans). */
#include <check.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "calls/calls.h"
#include "core/errors.h"
#include "index/index.h"

#define S 1000000LL
#define T0 (1764000000LL * S)

static char g_dir[64];
static char g_db[128];
static idx_t *g_idx;

static int rm_entry(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    (void)sb;
    (void)f;
    (void)w;
    remove(p);
    return 0;
}

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/vigil-test-calls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_db, sizeof(g_db), "%s/index.db", g_dir);
    ck_assert_int_eq(idx_open(g_db, 0, &g_idx), VG_OK);
    ck_assert_int_eq(idx_source_register(g_idx, "line-1", "audio"), VG_OK);
    ck_assert_int_eq(idx_source_register(g_idx, "line-2", "audio"), VG_OK);
    ck_assert_int_eq(idx_source_register(g_idx, "cam-1", "video"), VG_OK);
}

static void teardown(void)
{
    idx_close(g_idx);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* FTS5's own check of the text index (as an outside observer, with
 * sqlite3). rank 0: not against the call table, whose rows without notes
 * or tags are deliberately not indexed; the searches check the content. */
static void fts_consistent(void)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    ck_assert_int_eq(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    int rc = sqlite3_exec(db, "INSERT INTO call_fts(call_fts, rank) VALUES ('integrity-check', 0)",
                          NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "fts integrity: %s", msg ? msg : "?");
    sqlite3_close(db);
}

/* ---- numbers ---- */

START_TEST(test_normalize_table)
{
    static const struct {
        const char *raw, *want; /* want NULL: refused */
    } cases[] = {
        {"8 (912) 345-67-89", "+79123456789"},
        {"+7 912 345 67 89", "+79123456789"},
        {"9123456789", "+79123456789"},
        {"79123456789", "+79123456789"},
        {"89123456789", "+79123456789"},
        {"+7(495)111-22-33", "+74951112233"},
        {"4951112233", "+74951112233"},
        {"8.912.345.67.89", "+79123456789"},
        {"810 44 20 7946 0000", "+442079460000"},
        {"+44 20 7946 0000", "+442079460000"},
        {"101", "101"},
        {"5501", "5501"},
        {"0123456789", "0123456789"},
        {"  102 ", "102"},
        {"Anonymous", NULL},
        {"", NULL},
        {"+", NULL},
        {"12+34", NULL},
        {"1234567890123456", NULL},
        {"sip:101@pbx", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[IDX_CALL_NUM_MAX];
        int rc = call_number_normalize(cases[i].raw, out, sizeof(out));
        if (cases[i].want) {
            ck_assert_msg(rc == VG_OK, "'%s' refused", cases[i].raw);
            ck_assert_msg(strcmp(out, cases[i].want) == 0, "'%s' -> '%s', want '%s'",
                          cases[i].raw, out, cases[i].want);
        } else {
            ck_assert_msg(rc == VG_EINVAL, "'%s' taken as '%s'", cases[i].raw, out);
        }
    }
    char out[IDX_CALL_NUM_MAX];
    int suffix = 0;
    ck_assert_int_eq(call_number_query("*4567", out, sizeof(out), &suffix), VG_OK);
    ck_assert(suffix && strcmp(out, "4567") == 0);
    ck_assert_int_eq(call_number_query("*45a7", out, sizeof(out), &suffix), VG_EINVAL);
    ck_assert_int_eq(call_number_query("*", out, sizeof(out), &suffix), VG_EINVAL);
    ck_assert_int_eq(call_number_query("8 912 345 67 89", out, sizeof(out), &suffix), VG_OK);
    ck_assert(!suffix && strcmp(out, "+79123456789") == 0);
}
END_TEST

START_TEST(test_channel_to_line)
{
    vg_source_config_t src[3] = {
        {.name = "line-1", .kind = VG_SOURCE_AUDIO, .pbx_extension = "101"},
        {.name = "line-2", .kind = VG_SOURCE_AUDIO, .pbx_extension = "1012"},
        {.name = "cam-1", .kind = VG_SOURCE_VIDEO, .pbx_extension = "200"},
    };
    vg_config_t cfg = {.sources = src, .n_sources = 3};
    ck_assert_ptr_eq(call_line_of_channel(&cfg, "SIP/101-0000002a"), &src[0]);
    ck_assert_ptr_eq(call_line_of_channel(&cfg, "PJSIP/101-00000003"), &src[0]);
    ck_assert_ptr_eq(call_line_of_channel(&cfg, "Local/101@from-queue-0001;1"), &src[0]);
    ck_assert_ptr_eq(call_line_of_channel(&cfg, "SIP/1012-00000001"), &src[1]);
    ck_assert_ptr_null(call_line_of_channel(&cfg, "SIP/10-00000001"));
    ck_assert_ptr_null(call_line_of_channel(&cfg, "SIP/200-00000001")); /* not audio */
    ck_assert_ptr_null(call_line_of_channel(&cfg, "101"));
    ck_assert_ptr_null(call_line_of_channel(&cfg, "SIP/"));
}
END_TEST

/* ---- the index ---- */

static int64_t add(const char *source, const char *call_id, int64_t start_s, int64_t len_s,
                   const char *caller, const char *agent, const char *notes)
{
    idx_call_t c;
    idx_call_init(&c);
    snprintf(c.source, sizeof(c.source), "%s", source);
    snprintf(c.call_id, sizeof(c.call_id), "%s", call_id ? call_id : "");
    c.start_us = T0 + start_s * S;
    c.end_us = len_s >= 0 ? c.start_us + len_s * S : 0;
    if (caller) {
        snprintf(c.caller_raw, sizeof(c.caller_raw), "%s", caller);
        call_number_normalize(caller, c.caller, sizeof(c.caller));
    }
    snprintf(c.agent, sizeof(c.agent), "%s", agent ? agent : "");
    snprintf(c.notes, sizeof(c.notes), "%s", notes ? notes : "");
    snprintf(c.origin, sizeof(c.origin), "pbx");
    c.created_us = c.updated_us = T0;
    int64_t id = 0;
    int created = 0;
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id, &created), VG_OK);
    return id;
}

typedef struct {
    int64_t ids[64];
    size_t n;
} got_t;

static void collect(void *ctx, const idx_call_t *c)
{
    got_t *g = ctx;
    if (g->n < 64)
        g->ids[g->n++] = c->id;
}

static got_t search(const idx_call_query_t *q, int *more)
{
    got_t g = {.n = 0};
    ck_assert_int_eq(idx_call_search(g_idx, q, collect, &g, more), VG_OK);
    return g;
}

START_TEST(test_upsert_idempotent_and_merge)
{
    idx_call_t c, out;
    idx_call_init(&c);
    snprintf(c.source, sizeof(c.source), "line-1");
    snprintf(c.call_id, sizeof(c.call_id), "1764000000.17");
    snprintf(c.origin, sizeof(c.origin), "pbx");
    c.start_us = T0;
    c.created_us = T0;
    int64_t id1 = 0, id2 = 0;
    int created = 0;
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id1, &created), VG_OK);
    ck_assert(created && id1 > 0);
    /* the same event with the end and an agent: merged, first words kept */
    c.end_us = T0 + 30 * S;
    snprintf(c.agent, sizeof(c.agent), "ivanova");
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id2, &created), VG_OK);
    ck_assert(!created && id2 == id1);
    snprintf(c.agent, sizeof(c.agent), "petrova");
    c.end_us = T0 + 99 * S;
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id2, &created), VG_OK);
    ck_assert_int_eq(idx_call_get(g_idx, id1, &out), VG_OK);
    ck_assert_str_eq(out.agent, "ivanova");
    ck_assert_int_eq(out.end_us, T0 + 30 * S);
    ck_assert_str_eq(out.tags, "[]");
    /* refused: another line's call_id, a video source, an unknown one, end < start */
    snprintf(c.source, sizeof(c.source), "line-2");
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id2, &created), VG_EEXIST);
    snprintf(c.call_id, sizeof(c.call_id), "other");
    snprintf(c.source, sizeof(c.source), "cam-1");
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id2, &created), VG_EINVAL);
    snprintf(c.source, sizeof(c.source), "nope");
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id2, &created), VG_ENOTFOUND);
    snprintf(c.source, sizeof(c.source), "line-1");
    c.end_us = T0 - S;
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id2, &created), VG_EINVAL);
    snprintf(c.direction, sizeof(c.direction), "up");
    c.end_us = 0;
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id2, &created), VG_EINVAL);
    /* vad calls have no call_id: each is its own row */
    int64_t a = add("line-1", NULL, 100, 5, NULL, NULL, NULL);
    int64_t b = add("line-1", NULL, 100, 5, NULL, NULL, NULL);
    ck_assert_int_ne(a, b);
}
END_TEST

START_TEST(test_update_partial)
{
    int64_t id = add("line-1", "u1", 0, -1, "89123456789", "a", "first");
    idx_call_t c, out;
    idx_call_init(&c);
    snprintf(c.notes, sizeof(c.notes), "second note");
    snprintf(c.tags, sizeof(c.tags), "[\"vip\"]");
    c.updated_us = T0 + S;
    ck_assert_int_eq(idx_call_update(g_idx, id, &c, IDX_CALL_F_NOTES | IDX_CALL_F_TAGS), VG_OK);
    ck_assert_int_eq(idx_call_get(g_idx, id, &out), VG_OK);
    ck_assert_str_eq(out.notes, "second note");
    ck_assert_str_eq(out.agent, "a");
    ck_assert_str_eq(out.caller, "+79123456789");
    ck_assert_int_eq(out.end_us, 0);
    /* an end before the stored start is refused by the table */
    c.start_us = T0;
    c.end_us = T0 - S;
    ck_assert_int_eq(idx_call_update(g_idx, id, &c, IDX_CALL_F_END), VG_EINVAL);
    c.end_us = T0 + 10 * S;
    ck_assert_int_eq(idx_call_update(g_idx, id, &c, IDX_CALL_F_END), VG_OK);
    ck_assert_int_eq(idx_call_get(g_idx, id, &out), VG_OK);
    ck_assert_int_eq(out.end_us, T0 + 10 * S);
    ck_assert_int_eq(idx_call_update(g_idx, 424242, &c, IDX_CALL_F_END), VG_ENOTFOUND);
    /* the FTS table follows the notes */
    idx_call_query_t q = {.text = "\"second\"", .limit = 10};
    ck_assert_int_eq(search(&q, NULL).n, 1);
    q.text = "\"first\"";
    ck_assert_int_eq(search(&q, NULL).n, 0);
    /* notes and tags emptied: the call leaves the text index */
    c.notes[0] = '\0';
    snprintf(c.tags, sizeof(c.tags), "[]");
    ck_assert_int_eq(idx_call_update(g_idx, id, &c, IDX_CALL_F_NOTES | IDX_CALL_F_TAGS), VG_OK);
    q.text = "\"second\"";
    ck_assert_int_eq(search(&q, NULL).n, 0);
    fts_consistent();
}
END_TEST

START_TEST(test_search_filters_and_cursor)
{
    int64_t a = add("line-1", "s1", 0, 10, "+79123456789", "ivanova", "loan complaint");
    int64_t b = add("line-1", "s2", 60, 200, "84951112233", "ivanova", "mortgage");
    int64_t c = add("line-2", "s3", 120, 30, "+79123456789", "petrova", "");
    int64_t d = add("line-2", "s4", 180, -1, "101", "petrova", "loan");
    idx_call_query_t q = {.limit = 10};
    got_t g = search(&q, NULL);
    ck_assert_int_eq(g.n, 4);
    ck_assert(g.ids[0] == d && g.ids[1] == c && g.ids[2] == b && g.ids[3] == a);
    q = (idx_call_query_t){.number = "+79123456789", .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 2 && g.ids[0] == c && g.ids[1] == a);
    q = (idx_call_query_t){.number_suffix = "6789", .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 2 && g.ids[0] == c && g.ids[1] == a);
    q = (idx_call_query_t){.number_suffix = "2233", .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 1 && g.ids[0] == b);
    q = (idx_call_query_t){.number = "101", .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 1 && g.ids[0] == d);
    q = (idx_call_query_t){.agent = "ivanova", .from_us = T0 + 30 * S, .to_us = T0 + 90 * S,
                           .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 1 && g.ids[0] == b);
    q = (idx_call_query_t){.min_us = 20 * S, .max_us = 100 * S, .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 1 && g.ids[0] == c); /* the open call has no length */
    q = (idx_call_query_t){.text = "\"loan\"", .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 2 && g.ids[0] == d && g.ids[1] == a);
    /* text with bounds at the ends of time (the key range stays in int64) */
    q = (idx_call_query_t){.text = "\"loan\"", .to_us = INT64_MAX, .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 2 && g.ids[0] == d && g.ids[1] == a);
    q = (idx_call_query_t){.text = "\"loan\"", .from_us = INT64_MAX - 1, .to_us = INT64_MAX,
                           .after_start_us = INT64_MAX - 1, .after_id = INT64_MAX, .limit = 10};
    ck_assert_uint_eq(search(&q, NULL).n, 0);
    q = (idx_call_query_t){.sources = "line-2", .limit = 10};
    g = search(&q, NULL);
    ck_assert(g.n == 2 && g.ids[0] == d && g.ids[1] == c);
    fts_consistent();
    q = (idx_call_query_t){.text = "\"unbalanced", .limit = 10};
    got_t none = {.n = 0};
    ck_assert_int_eq(idx_call_search(g_idx, &q, collect, &none, NULL), VG_EINVAL);
    /* pages of one, following the cursor */
    int more = 0;
    q = (idx_call_query_t){.limit = 1};
    int64_t seen[4];
    idx_call_t row;
    for (int i = 0; i < 4; i++) {
        g = search(&q, &more);
        ck_assert_int_eq(g.n, 1);
        seen[i] = g.ids[0];
        ck_assert_int_eq(more, i < 3);
        ck_assert_int_eq(idx_call_get(g_idx, g.ids[0], &row), VG_OK);
        q.after_start_us = row.start_us;
        q.after_id = row.id;
    }
    ck_assert(seen[0] == d && seen[1] == c && seen[2] == b && seen[3] == a);
}
END_TEST

START_TEST(test_ties_page_by_id)
{
    /* calls starting at the same microsecond still page without loss */
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char cid[16];
        snprintf(cid, sizeof(cid), "t%d", i);
        ids[i] = add("line-1", cid, 0, 5, NULL, "same", NULL);
    }
    idx_call_query_t q = {.agent = "same", .limit = 2};
    size_t total = 0;
    int more = 1;
    idx_call_t row;
    while (more) {
        got_t g = search(&q, &more);
        for (size_t i = 0; i < g.n; i++)
            ck_assert_int_eq(g.ids[i], ids[4 - total - i]);
        total += g.n;
        ck_assert_int_eq(idx_call_get(g_idx, g.ids[g.n - 1], &row), VG_OK);
        q.after_start_us = row.start_us;
        q.after_id = row.id;
    }
    ck_assert_int_eq(total, 5);
}
END_TEST

START_TEST(test_text_ties_moved_calls)
{
    /* x and y move into b's microsecond after b: their text keys come after
     * b's though their ids are smaller; pages of one still follow the id */
    int64_t x = add("line-1", "m1", 10, 5, NULL, NULL, "same words");
    int64_t y = add("line-1", "m2", 20, 5, NULL, NULL, "same words");
    int64_t b = add("line-1", "m3", 30, 5, NULL, NULL, "same words");
    idx_call_t c;
    idx_call_init(&c);
    c.start_us = T0 + 30 * S;
    c.end_us = T0 + 35 * S;
    c.updated_us = T0;
    ck_assert_int_eq(idx_call_update(g_idx, x, &c, IDX_CALL_F_START | IDX_CALL_F_END), VG_OK);
    ck_assert_int_eq(idx_call_update(g_idx, y, &c, IDX_CALL_F_START | IDX_CALL_F_END), VG_OK);
    int64_t want[] = {b, y, x};
    idx_call_query_t q = {.text = "\"same\"", .limit = 1};
    int more = 1;
    size_t total = 0;
    while (more) {
        got_t g = search(&q, &more);
        ck_assert_uint_eq(g.n, 1);
        ck_assert_uint_lt(total, 3);
        ck_assert_int_eq(g.ids[0], want[total++]);
        q.after_start_us = T0 + 30 * S;
        q.after_id = g.ids[0];
    }
    ck_assert_uint_eq(total, 3);
    fts_consistent();
}
END_TEST

START_TEST(test_announcement_and_unchecked)
{
    int64_t a = add("line-1", "n1", 0, 10, NULL, NULL, NULL);
    int64_t open = add("line-1", "n2", 5, -1, NULL, NULL, NULL);
    int64_t b = add("line-1", "n3", 20, 10, NULL, NULL, NULL);
    got_t g = {.n = 0};
    ck_assert_int_eq(idx_call_list_ended_unchecked(g_idx, 10, collect, &g), VG_OK);
    ck_assert(g.n == 2 && g.ids[0] == a && g.ids[1] == b);
    ck_assert_int_eq(idx_call_set_announcement(g_idx, a, "present", 1500000, 0.93, T0), VG_OK);
    ck_assert_int_eq(idx_call_set_announcement(g_idx, b, "maybe", -1, -1, T0), VG_EINVAL);
    ck_assert_int_eq(idx_call_set_announcement(g_idx, 999, "absent", -1, -1, T0), VG_ENOTFOUND);
    idx_call_t c;
    ck_assert_int_eq(idx_call_get(g_idx, a, &c), VG_OK);
    ck_assert_str_eq(c.ann_state, "present");
    ck_assert_int_eq(c.ann_offset_us, 1500000);
    ck_assert(c.ann_score > 0.92 && c.ann_score < 0.94);
    g.n = 0;
    ck_assert_int_eq(idx_call_list_ended_unchecked(g_idx, 10, collect, &g), VG_OK);
    ck_assert(g.n == 1 && g.ids[0] == b);
    int64_t n = 0;
    ck_assert_int_eq(idx_call_clear_announcement(g_idx, T0, T0 + 3600 * S, &n), VG_OK);
    ck_assert_int_eq(n, 3);
    (void)open;
}
END_TEST

static void add_segment(const char *source, int64_t start_s, int64_t len_s, int n)
{
    idx_segment_t s = {0};
    snprintf(s.source, sizeof(s.source), "%s", source);
    s.start_us = T0 + start_s * S;
    s.end_us = s.start_us + len_s * S;
    s.media_us = len_s * S;
    s.bytes = 1000;
    memset(s.sha256, 'a', 64);
    snprintf(s.codecs, sizeof(s.codecs), "pcm_alaw");
    snprintf(s.path, sizeof(s.path), "%s/%d.mov", source, n);
    ck_assert_int_eq(idx_segment_insert(g_idx, &s), VG_OK);
}

START_TEST(test_sweep_with_audio_and_holds)
{
    /* line-1 has audio from +1000 s; line-2 has none at all */
    add_segment("line-1", 1000, 60, 1);
    int64_t old = add("line-1", "w1", 0, 10, NULL, NULL, "old note");
    int64_t held = add("line-1", "w2", 100, 10, NULL, NULL, NULL);
    int64_t kept = add("line-1", "w3", 1010, 10, NULL, NULL, NULL);
    int64_t nosegs = add("line-2", "w4", 0, 10, NULL, NULL, NULL);
    idx_hold_t h = {0};
    snprintf(h.case_no, sizeof(h.case_no), "C-1");
    snprintf(h.reason, sizeof(h.reason), "r");
    snprintf(h.created_by, sizeof(h.created_by), "t");
    h.from_us = T0 + 100 * S;
    h.to_us = T0 + 110 * S;
    const char *srcs[] = {"line-1"};
    ck_assert_int_eq(idx_hold_add(g_idx, &h, srcs, 1), VG_OK);
    ck_assert_int_eq(idx_hold_call_add(g_idx, h.id, &held, 1), VG_OK);
    int64_t *ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_hold_calls(g_idx, h.id, &ids, &n), VG_OK);
    ck_assert(n == 1 && ids[0] == held);
    free(ids);
    int64_t now = T0 + 2000 * S, deleted = 0;
    /* the metadata cutoff before everything: nothing goes */
    ck_assert_int_eq(idx_call_sweep(g_idx, T0 - S, T0 - S, now, 100, &deleted), VG_OK);
    ck_assert_int_eq(deleted, 0);
    /* audio gone before +1000 s: the old call goes, the held one stays; line-2
     * (no segments) keeps its call until the no-segment cutoff */
    ck_assert_int_eq(idx_call_sweep(g_idx, now, T0 - S, now, 100, &deleted), VG_OK);
    ck_assert_int_eq(deleted, 1);
    idx_call_t c;
    ck_assert_int_eq(idx_call_get(g_idx, old, &c), VG_ENOTFOUND);
    ck_assert_int_eq(idx_call_get(g_idx, held, &c), VG_OK);
    ck_assert_int_eq(idx_call_get(g_idx, kept, &c), VG_OK);
    ck_assert_int_eq(idx_call_get(g_idx, nosegs, &c), VG_OK);
    ck_assert_int_eq(idx_call_sweep(g_idx, now, now, now, 100, &deleted), VG_OK);
    ck_assert_int_eq(deleted, 1);
    ck_assert_int_eq(idx_call_get(g_idx, nosegs, &c), VG_ENOTFOUND);
    /* released: the held call goes at the next sweep */
    ck_assert_int_eq(idx_hold_release(g_idx, h.id, "t", "done", now), VG_OK);
    ck_assert_int_eq(idx_call_sweep(g_idx, now, now, now, 100, &deleted), VG_OK);
    ck_assert_int_eq(deleted, 1);
    ck_assert_int_eq(idx_call_get(g_idx, held, &c), VG_ENOTFOUND);
    ck_assert_int_eq(idx_call_get(g_idx, kept, &c), VG_OK);
    idx_call_query_t q = {.limit = 10};
    ck_assert_int_eq(search(&q, NULL).n, 1);
    fts_consistent();
}
END_TEST

START_TEST(test_search_plans_use_indexes)
{
    char plan[4096];
    idx_call_query_t q = {.number = "+79123456789", .limit = 50};
    ck_assert_int_eq(idx_call_explain(g_idx, &q, plan, sizeof(plan)), VG_OK);
    ck_assert_msg(strstr(plan, "call_caller") && strstr(plan, "call_callee"), "%s", plan);
    /* two ordered walks merged (no sort of their matches), for a number
     * and for four trailing digits or more */
    ck_assert_msg(strstr(plan, "MERGE"), "%s", plan);
    q = (idx_call_query_t){.number_suffix = "4567", .limit = 50};
    ck_assert_int_eq(idx_call_explain(g_idx, &q, plan, sizeof(plan)), VG_OK);
    ck_assert_msg(strstr(plan, "call_caller_rev4") && strstr(plan, "call_callee_rev4") &&
                  strstr(plan, "MERGE"), "%s", plan);
    q = (idx_call_query_t){.number_suffix = "67", .limit = 50};
    ck_assert_int_eq(idx_call_explain(g_idx, &q, plan, sizeof(plan)), VG_OK);
    ck_assert_msg(strstr(plan, "call_caller_rev4") && strstr(plan, "call_callee_rev4"), "%s", plan);
    /* the text index's own order, a time range its rowid range */
    q = (idx_call_query_t){.text = "\"loan\"", .from_us = T0, .to_us = T0 + 86400 * S,
                           .limit = 50};
    ck_assert_int_eq(idx_call_explain(g_idx, &q, plan, sizeof(plan)), VG_OK);
    ck_assert_msg(strstr(plan, "VIRTUAL TABLE") && strstr(plan, "call_fts_key") &&
                  !strstr(plan, "TEMP B-TREE"), "%s", plan);
    q = (idx_call_query_t){.agent = "ivanova", .from_us = T0, .to_us = T0 + 86400 * S,
                           .limit = 50};
    ck_assert_int_eq(idx_call_explain(g_idx, &q, plan, sizeof(plan)), VG_OK);
    ck_assert_msg(strstr(plan, "call_agent"), "%s", plan);
    q = (idx_call_query_t){.limit = 50};
    ck_assert_int_eq(idx_call_explain(g_idx, &q, plan, sizeof(plan)), VG_OK);
    ck_assert_msg(strstr(plan, "call_start") && !strstr(plan, "TEMP B-TREE"), "%s", plan);
}
END_TEST

/* ---- the search against a plain reference on random data ----
 * Each way the search can take (merged number walks, the four-digit
 * suffix walks and the shorter suffix filter, the text index keyed by
 * start with its ties, the plain walks) pages through random calls with
 * random filters, time ranges and page sizes; the pages put together must
 * be the reference's list: every call the filters match, by start then id,
 * newest first, from a model kept beside the index. The calls share
 * microseconds (ties), numbers share trailing digits, and some are moved
 * (new start, new notes) or deleted after they were written, so the text
 * keys are made again by the triggers. */

#define RND_CALLS 400

typedef struct {
    int64_t id, start_us, end_us;
    int source; /* 1 or 2 */
    char caller[24], callee[24], agent[8], notes[48], tags[32];
    int gone;
} model_call_t;

static model_call_t g_model[RND_CALLS];
static uint64_t g_rnd = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    g_rnd = g_rnd * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rnd >> 33) % n;
}

static const char *const rnd_numbers[] = {"+79120001234", "+79130001234", "+79125551234",
                                          "+74951114567", "+79124564567", "101",
                                          "1234", "+79990000001", ""};
static const char *const rnd_words[] = {"alpha", "beta", "gamma", "delta"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void rnd_notes(model_call_t *m)
{
    m->notes[0] = '\0';
    snprintf(m->tags, sizeof(m->tags), "[]");
    if (rnd(3) == 0)
        snprintf(m->notes, sizeof(m->notes), "%s %s", rnd_words[rnd(4)], rnd_words[rnd(4)]);
    if (rnd(5) == 0)
        snprintf(m->tags, sizeof(m->tags), "[\"%s\"]", rnd_words[rnd(4)]);
}

static void model_fill(void)
{
    for (int i = 0; i < RND_CALLS; i++) {
        model_call_t *m = &g_model[i];
        memset(m, 0, sizeof(*m));
        /* few distinct starts: many calls share a microsecond */
        m->start_us = T0 + (int64_t)rnd(50) * S + (rnd(4) == 0 ? 0 : (int64_t)rnd(3));
        m->end_us = rnd(6) == 0 ? 0 : m->start_us + (int64_t)(1 + rnd(300)) * S;
        m->source = 1 + (int)rnd(2);
        snprintf(m->caller, sizeof(m->caller), "%s", rnd_numbers[rnd(NELEM(rnd_numbers))]);
        snprintf(m->callee, sizeof(m->callee), "%s", rnd_numbers[rnd(NELEM(rnd_numbers))]);
        snprintf(m->agent, sizeof(m->agent), "a%u", rnd(3));
        rnd_notes(m);
        idx_call_t c;
        idx_call_init(&c);
        snprintf(c.source, sizeof(c.source), "line-%d", m->source);
        snprintf(c.call_id, sizeof(c.call_id), "r%d", i);
        c.start_us = m->start_us;
        c.end_us = m->end_us;
        snprintf(c.caller, sizeof(c.caller), "%s", m->caller);
        snprintf(c.callee, sizeof(c.callee), "%s", m->callee);
        snprintf(c.agent, sizeof(c.agent), "%s", m->agent);
        snprintf(c.notes, sizeof(c.notes), "%s", m->notes);
        snprintf(c.tags, sizeof(c.tags), "%s", m->tags);
        snprintf(c.origin, sizeof(c.origin), "pbx");
        c.created_us = c.updated_us = T0;
        int created = 0;
        ck_assert_int_eq(idx_call_upsert(g_idx, &c, &m->id, &created), VG_OK);
    }
    /* later changes: new starts (the text key moves), new notes, deletions */
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    for (int i = 0; i < RND_CALLS; i++) {
        model_call_t *m = &g_model[i];
        uint32_t what = rnd(8);
        idx_call_t c;
        idx_call_init(&c);
        c.updated_us = T0 + S;
        if (what == 0) {
            m->start_us = T0 + (int64_t)rnd(50) * S;
            if (m->end_us && m->end_us < m->start_us)
                m->end_us = m->start_us;
            c.start_us = m->start_us;
            c.end_us = m->end_us;
            ck_assert_int_eq(idx_call_update(g_idx, m->id, &c,
                                             IDX_CALL_F_START | (m->end_us ? IDX_CALL_F_END : 0)),
                             VG_OK);
        } else if (what == 1) {
            rnd_notes(m);
            snprintf(c.notes, sizeof(c.notes), "%s", m->notes);
            snprintf(c.tags, sizeof(c.tags), "%s", m->tags);
            ck_assert_int_eq(idx_call_update(g_idx, m->id, &c, IDX_CALL_F_NOTES | IDX_CALL_F_TAGS),
                             VG_OK);
        } else if (what == 2) {
            char sql[64];
            snprintf(sql, sizeof(sql), "DELETE FROM call WHERE id = %lld", (long long)m->id);
            ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
            m->gone = 1;
        }
    }
    sqlite3_close(db);
}

static int ends_with_digits(const char *num, const char *digits)
{
    char d[32];
    size_t n = 0, k = strlen(digits);
    for (const char *p = num; *p && n + 1 < sizeof(d); p++) {
        if (*p >= '0' && *p <= '9')
            d[n++] = *p;
    }
    d[n] = '\0';
    return n >= k && strcmp(d + n - k, digits) == 0;
}

static int model_match(const model_call_t *m, const idx_call_query_t *q)
{
    if (m->gone)
        return 0;
    if ((q->from_us && m->start_us < q->from_us) || (q->to_us && m->start_us >= q->to_us))
        return 0;
    if (q->number && strcmp(m->caller, q->number) != 0 && strcmp(m->callee, q->number) != 0)
        return 0;
    if (q->number_suffix && !(m->caller[0] && ends_with_digits(m->caller, q->number_suffix)) &&
        !(m->callee[0] && ends_with_digits(m->callee, q->number_suffix)))
        return 0;
    if (q->agent && strcmp(m->agent, q->agent) != 0)
        return 0;
    if (q->source && strcmp(q->source, m->source == 1 ? "line-1" : "line-2") != 0)
        return 0;
    if (q->min_us && (!m->end_us || m->end_us - m->start_us < q->min_us))
        return 0;
    if (q->text) {
        /* q->text is "\"word\"": the words share no letters' runs */
        char w[16];
        snprintf(w, sizeof(w), "%.*s", (int)strlen(q->text) - 2, q->text + 1);
        if (!strstr(m->notes, w) && !strstr(m->tags, w))
            return 0;
    }
    return 1;
}

static int model_newer_first(const void *a, const void *b)
{
    const model_call_t *x = *(const model_call_t *const *)a, *y = *(const model_call_t *const *)b;
    if (x->start_us != y->start_us)
        return x->start_us < y->start_us ? 1 : -1;
    return x->id < y->id ? 1 : -1;
}

typedef struct {
    int64_t ids[RND_CALLS], starts[RND_CALLS];
    size_t n;
} all_t;

static void collect_all(void *ctx, const idx_call_t *c)
{
    all_t *a = ctx;
    ck_assert_uint_lt(a->n, RND_CALLS);
    a->ids[a->n] = c->id;
    a->starts[a->n++] = c->start_us;
}

static void check_query(idx_call_query_t q, int n_query)
{
    const model_call_t *ref[RND_CALLS];
    size_t n_ref = 0;
    for (int i = 0; i < RND_CALLS; i++) {
        if (model_match(&g_model[i], &q))
            ref[n_ref++] = &g_model[i];
    }
    qsort(ref, n_ref, sizeof(ref[0]), model_newer_first);
    all_t *got = calloc(1, sizeof(*got));
    int more = 1;
    size_t pages = 0;
    while (more) {
        size_t before = got->n;
        ck_assert_int_eq(idx_call_search(g_idx, &q, collect_all, got, &more), VG_OK);
        ck_assert_uint_le(got->n - before, q.limit);
        if (more)
            ck_assert_uint_eq(got->n - before, q.limit);
        if (got->n > before) {
            q.after_start_us = got->starts[got->n - 1];
            q.after_id = got->ids[got->n - 1];
        }
        ck_assert_uint_le(++pages, RND_CALLS + 1);
    }
    ck_assert_msg(got->n == n_ref, "query %d: %zu calls, the reference %zu", n_query, got->n,
                  n_ref);
    for (size_t i = 0; i < n_ref; i++)
        ck_assert_msg(got->ids[i] == ref[i]->id, "query %d: row %zu is %lld, the reference %lld",
                      n_query, i, (long long)got->ids[i], (long long)ref[i]->id);
    free(got);
}

START_TEST(test_search_matches_reference)
{
    static const char *const suffixes[] = {"4", "34", "234", "1234", "01234", "4567", "64567",
                                           "1", "101", "0001", "9990000001", "5555"};
    static const char *const words[] = {"\"alpha\"", "\"beta\"", "\"gamma\"", "\"delta\"",
                                        "\"omega\""};
    model_fill();
    fts_consistent();
    for (int n = 0; n < 400; n++) {
        idx_call_query_t q = {.limit = 1 + rnd(7)};
        switch (rnd(4)) { /* the driving filter */
        case 0:
            q.number = rnd_numbers[rnd(NELEM(rnd_numbers) - 1)];
            break;
        case 1:
            q.number_suffix = suffixes[rnd(NELEM(suffixes))];
            break;
        case 2:
            q.text = words[rnd(NELEM(words))];
            break;
        default:
            break;
        }
        if (rnd(3) == 0)
            q.from_us = T0 + (int64_t)rnd(50) * S + (int64_t)rnd(3);
        if (rnd(3) == 0)
            q.to_us = T0 + (int64_t)rnd(50) * S + (int64_t)rnd(3);
        if (rnd(4) == 0)
            q.agent = rnd(2) ? "a1" : "a2";
        if (rnd(5) == 0)
            q.source = rnd(2) ? "line-1" : "line-2";
        if (rnd(6) == 0)
            q.min_us = (int64_t)rnd(200) * S;
        if (rnd(6) == 0 && !q.text)
            q.text = words[rnd(NELEM(words))];
        check_query(q, n);
    }
}
END_TEST

static Suite *calls_suite(void)
{
    Suite *s = suite_create("calls");
    TCase *tc = tcase_create("calls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_normalize_table);
    tcase_add_test(tc, test_channel_to_line);
    tcase_add_test(tc, test_upsert_idempotent_and_merge);
    tcase_add_test(tc, test_update_partial);
    tcase_add_test(tc, test_search_filters_and_cursor);
    tcase_add_test(tc, test_ties_page_by_id);
    tcase_add_test(tc, test_text_ties_moved_calls);
    tcase_add_test(tc, test_announcement_and_unchecked);
    tcase_add_test(tc, test_sweep_with_audio_and_holds);
    tcase_add_test(tc, test_search_plans_use_indexes);
    tcase_add_test(tc, test_search_matches_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(calls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
