/* Check suite for core/util.c and core/log.c: time text both ways, source
 * names, URL redaction, the crash-safety file-system helpers and the logger. */
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#include <check.h>
#include <jansson.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_2026_11_27 INT64_C(1795773600) /* 2026-11-27T10:00:00Z */

/* ---- vg_time_format ---- */

static void assert_formats(int64_t us, const char *want)
{
    char out[VG_TIME_TEXT_MAX];
    memset(out, 'x', sizeof(out));
    vg_time_format(us, out);
    ck_assert_str_eq(out, want);
}

START_TEST(test_format_epoch)
{
    assert_formats(0, "1970-01-01T00:00:00.000Z");
    assert_formats(T_2026_11_27 * 1000000, "2026-11-27T10:00:00.000Z");
    assert_formats(INT64_C(1795000000) * 1000000, "2026-11-18T11:06:40.000Z");
}
END_TEST

/* Milliseconds are truncated, never rounded up into the next second. */
START_TEST(test_format_truncates_ms)
{
    assert_formats(999, "1970-01-01T00:00:00.000Z");
    assert_formats(1000, "1970-01-01T00:00:00.001Z");
    assert_formats(1999, "1970-01-01T00:00:00.001Z");
    assert_formats(999999, "1970-01-01T00:00:00.999Z");
    assert_formats(T_2026_11_27 * 1000000 + 123456, "2026-11-27T10:00:00.123Z");
}
END_TEST

/* Before the epoch the time still floors: -1 µs is in the previous second. */
START_TEST(test_format_negative)
{
    assert_formats(-1, "1969-12-31T23:59:59.999Z");
    assert_formats(-1000000, "1969-12-31T23:59:59.000Z");
    assert_formats(-1500, "1969-12-31T23:59:59.998Z");
    assert_formats(-1000001, "1969-12-31T23:59:58.999Z");
}
END_TEST

/* ---- vg_time_parse ---- */

static int64_t parsed(const char *text)
{
    int64_t us = -12345;
    int rc = vg_time_parse(text, &us);
    ck_assert_msg(rc == VG_OK, "\"%s\" rejected (%d)", text, rc);
    return us;
}

START_TEST(test_parse_rfc3339)
{
    ck_assert_int_eq(parsed("2026-11-27T10:00:00Z"), T_2026_11_27 * 1000000);
    ck_assert_int_eq(parsed("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(parsed("2026-11-27t10:00:00z"), T_2026_11_27 * 1000000);
    ck_assert_int_eq(parsed("2024-02-29T00:00:00Z"), INT64_C(1709164800) * 1000000);
    ck_assert_int_eq(parsed("2000-02-29T12:00:00Z"), INT64_C(951825600) * 1000000);
}
END_TEST

START_TEST(test_parse_fraction)
{
    ck_assert_int_eq(parsed("2026-11-27T10:00:00.5Z"), T_2026_11_27 * 1000000 + 500000);
    ck_assert_int_eq(parsed("2026-11-27T10:00:00.123Z"), T_2026_11_27 * 1000000 + 123000);
    ck_assert_int_eq(parsed("2026-11-27T10:00:00.123456Z"), T_2026_11_27 * 1000000 + 123456);
    /* Beyond microseconds the digits are dropped, not rounded. */
    ck_assert_int_eq(parsed("2026-11-27T10:00:00.1234569Z"), T_2026_11_27 * 1000000 + 123456);
}
END_TEST

START_TEST(test_parse_offset)
{
    /* 13:00 in Moscow (+03:00) is 10:00 UTC. */
    ck_assert_int_eq(parsed("2026-11-27T13:00:00+03:00"), T_2026_11_27 * 1000000);
    ck_assert_int_eq(parsed("2026-11-27T04:30:00-05:30"), T_2026_11_27 * 1000000);
    ck_assert_int_eq(parsed("2026-11-27T10:00:00+00:00"), T_2026_11_27 * 1000000);
    ck_assert_int_eq(parsed("2026-11-27T13:00:00.250+03:00"), T_2026_11_27 * 1000000 + 250000);
}
END_TEST

START_TEST(test_parse_unix_seconds)
{
    ck_assert_int_eq(parsed("1795000000"), INT64_C(1795000000) * 1000000);
    ck_assert_int_eq(parsed("0"), 0);
    ck_assert_int_eq(parsed("1795000000.25"), INT64_C(1795000000) * 1000000 + 250000);
    ck_assert_int_eq(parsed("1795000000.000001"), INT64_C(1795000000) * 1000000 + 1);
}
END_TEST

static const char *bad_times[] = {
    "",
    "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2026-11-31T00:00:00Z",
    "2026-11-27T24:00:00Z",
    "2026-11-27T10:60:00Z",
    "2026-11-27T10:00:00Zjunk",
    "2026-11-27T10:00:00Z ",
    "2026-11-27T10:00:00",
    "2026-11-27T10:00:00.Z",
    "2026-11-27T10:00:00+0300",
    "2026-11-27T10:00:00+24:00",
    "2026-11-27",
    "2026-11-27T10:00Z",
    "26-11-27T10:00:00Z",
    "1795000000x",
    "1795000000.",
    "17950 00000",
    "now",
    "-5",
};

/* A deadline lies the given time ahead, its nanoseconds normalised. */
START_TEST(test_list_append)
{
    char buf[12] = "";
    vg_list_append(buf, sizeof(buf), "h264");
    ck_assert_str_eq(buf, "h264");
    vg_list_append(buf, sizeof(buf), "pcm_alaw"); /* cut short: 11 characters fit */
    ck_assert_str_eq(buf, "h264,pcm_al");
    vg_list_append(buf, sizeof(buf), "opus"); /* full: unchanged */
    ck_assert_str_eq(buf, "h264,pcm_al");
    char one[1] = "";
    vg_list_append(one, sizeof(one), "x"); /* no room at all */
    ck_assert_str_eq(one, "");
}
END_TEST

START_TEST(test_deadline_us)
{
    const int64_t steps[] = {0, 300, 999999, 1500000, 61000000};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct timespec before, d, after;
        clock_gettime(CLOCK_MONOTONIC, &before);
        vg_deadline_us(CLOCK_MONOTONIC, steps[i], &d);
        clock_gettime(CLOCK_MONOTONIC, &after);
        ck_assert(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
        int64_t at = (int64_t)d.tv_sec * 1000000000LL + d.tv_nsec;
        ck_assert_int_ge(at, (int64_t)before.tv_sec * 1000000000LL + before.tv_nsec +
                                 steps[i] * 1000);
        ck_assert_int_le(at, (int64_t)after.tv_sec * 1000000000LL + after.tv_nsec +
                                 steps[i] * 1000);
    }
}
END_TEST

START_TEST(test_parse_rejects)
{
    int64_t us = 0;
    ck_assert_msg(vg_time_parse(bad_times[_i], &us) == VG_EINVAL, "\"%s\" accepted", bad_times[_i]);
}
END_TEST

START_TEST(test_round_trip)
{
    static const char *texts[] = {
        "1970-01-01T00:00:00.000Z", "2026-11-27T10:00:00.123Z", "1969-12-31T23:59:59.999Z",
        "2000-02-29T23:59:59.001Z", "2099-12-31T00:00:00.500Z",
    };
    char out[VG_TIME_TEXT_MAX];
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        vg_time_format(parsed(texts[i]), out);
        ck_assert_str_eq(out, texts[i]);
    }
    static const int64_t values[] = {0, -1000, 1000, T_2026_11_27 * 1000000 + 987000,
                                     INT64_C(-86400000000)};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        vg_time_format(values[i], out);
        ck_assert_int_eq(parsed(out), values[i]);
    }
}
END_TEST

/* ---- vg_source_name_valid ---- */

START_TEST(test_source_names)
{
    ck_assert_int_eq(vg_source_name_valid("a"), 1);
    ck_assert_int_eq(vg_source_name_valid("0"), 1);
    ck_assert_int_eq(vg_source_name_valid("hall-1"), 1);
    ck_assert_int_eq(vg_source_name_valid("1st-floor-"), 1);
    char name[70];
    memset(name, 'a', sizeof(name));
    name[63] = '\0';
    ck_assert_int_eq(vg_source_name_valid(name), 1);
    name[63] = 'a';
    name[64] = '\0';
    ck_assert_int_eq(vg_source_name_valid(name), 0);

    ck_assert_int_eq(vg_source_name_valid(""), 0);
    ck_assert_int_eq(vg_source_name_valid("Hall"), 0);
    ck_assert_int_eq(vg_source_name_valid("hAll"), 0);
    ck_assert_int_eq(vg_source_name_valid("-hall"), 0);
    ck_assert_int_eq(vg_source_name_valid("hall_1"), 0);
    ck_assert_int_eq(vg_source_name_valid("hall 1"), 0);
    ck_assert_int_eq(vg_source_name_valid("hall.1"), 0);
    ck_assert_int_eq(vg_source_name_valid("../x"), 0);
    ck_assert_int_eq(vg_source_name_valid("h\xc3\xa9"), 0);
}
END_TEST

/* ---- vg_url_redact ---- */

static void assert_redacts(const char *url, const char *want)
{
    char out[256];
    vg_url_redact(url, out, sizeof(out));
    ck_assert_str_eq(out, want);
}

START_TEST(test_redact)
{
    assert_redacts("rtsp://user:pass@10.0.0.5/stream1", "rtsp://***@10.0.0.5/stream1");
    assert_redacts("rtsp://user@10.0.0.5:554/s", "rtsp://***@10.0.0.5:554/s");
    assert_redacts("rtsps://u:p@ss@cam/s", "rtsps://***@cam/s");
    assert_redacts("rtsp://u:p@cam?a@b", "rtsp://***@cam?a@b");
    assert_redacts("rtsp://10.0.0.5/stream1", "rtsp://10.0.0.5/stream1");
    assert_redacts("rtsp://host/a@b", "rtsp://host/a@b");
    assert_redacts("rtsp://host?x=a@b", "rtsp://host?x=a@b");
    assert_redacts("rtsp://host", "rtsp://host");
    assert_redacts("", "");
}
END_TEST

START_TEST(test_redact_small_buffer)
{
    char out[12];
    vg_url_redact("rtsp://user:pass@10.0.0.5/stream1", out, sizeof(out));
    ck_assert_str_eq(out, "rtsp://***@");
    ck_assert_ptr_null(strstr(out, "pass"));
    char one = 'x';
    vg_url_redact("rtsp://h/", &one, 1);
    ck_assert_int_eq(one, '\0');
    char untouched = 'x';
    vg_url_redact("rtsp://h/", &untouched, 0);
    ck_assert_int_eq(untouched, 'x');
}
END_TEST

/* ---- file system ---- */

static char tmp_dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void fs_setup(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/vigil-test-util-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}

static void fs_teardown(void)
{
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int is_dir(const char *path, mode_t *mode)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    if (mode)
        *mode = st.st_mode & 07777;
    return 1;
}

START_TEST(test_mkdir_p)
{
    umask(022);
    char path[128];
    snprintf(path, sizeof(path), "%s/media/hall-1/2026/11", tmp_dir);
    ck_assert_int_eq(vg_mkdir_p(path), VG_OK);
    mode_t mode = 0;
    ck_assert(is_dir(path, &mode));
    ck_assert_uint_eq(mode, 0750);
    /* Existing directories are fine, as is a trailing slash. */
    ck_assert_int_eq(vg_mkdir_p(path), VG_OK);
    snprintf(path, sizeof(path), "%s/media/hall-2/", tmp_dir);
    ck_assert_int_eq(vg_mkdir_p(path), VG_OK);
    ck_assert(is_dir(path, NULL));
}
END_TEST

START_TEST(test_mkdir_p_over_file)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/file", tmp_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/file/sub", tmp_dir);
    ck_assert_int_eq(vg_mkdir_p(path), VG_EIO);
}
END_TEST

START_TEST(test_fsync_dir)
{
    ck_assert_int_eq(vg_fsync_dir(tmp_dir), VG_OK);
    char path[128];
    snprintf(path, sizeof(path), "%s/missing", tmp_dir);
    ck_assert_int_eq(vg_fsync_dir(path), VG_EIO);
    snprintf(path, sizeof(path), "%s/file", tmp_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    /* A regular file is not a directory: O_DIRECTORY must refuse it. */
    ck_assert_int_eq(vg_fsync_dir(path), VG_EIO);
    ck_assert_int_eq(vg_fsync_parent(path), VG_OK);
}
END_TEST

START_TEST(test_write_all)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/data", tmp_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(vg_write_all(fd, "hello", 5), VG_OK);
    char back[8] = {0};
    ck_assert_int_eq(pread(fd, back, sizeof(back), 0), 5);
    ck_assert_str_eq(back, "hello");
    close(fd);
    ck_assert_int_eq(vg_write_all(fd, "x", 1), VG_EIO);
}
END_TEST

/* ---- allocation ---- */

START_TEST(test_alloc)
{
    char *s = vg_asprintf("%s-%d", "hall", 7);
    ck_assert_str_eq(s, "hall-7");
    free(s);
    s = vg_strdup("");
    ck_assert_str_eq(s, "");
    free(s);
    /* Zero-size requests still return something free() accepts. */
    free(vg_malloc(0));
    free(vg_calloc(0, 0));
    int *v = vg_calloc(4, sizeof(int));
    ck_assert_int_eq(v[3], 0);
    v = vg_realloc(v, 8 * sizeof(int));
    ck_assert_int_eq(v[3], 0);
    free(v);
}
END_TEST

/* ---- logging ---- */

START_TEST(test_log_parse_level)
{
    static const struct { const char *name; vg_log_level_t level; } ok[] = {
        {"error", VG_LOG_ERR}, {"warning", VG_LOG_WARNING}, {"notice", VG_LOG_NOTICE},
        {"info", VG_LOG_INFO}, {"debug", VG_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        vg_log_level_t level = VG_LOG_ERR;
        ck_assert_int_eq(vg_log_parse_level(ok[i].name, &level), VG_OK);
        ck_assert_int_eq(level, ok[i].level);
    }
    vg_log_level_t level = VG_LOG_NOTICE;
    ck_assert_int_eq(vg_log_parse_level("warn", &level), VG_EINVAL);
    ck_assert_int_eq(vg_log_parse_level("INFO", &level), VG_EINVAL);
    ck_assert_int_eq(vg_log_parse_level("", &level), VG_EINVAL);
    ck_assert_int_eq(level, VG_LOG_NOTICE);
}
END_TEST

static int saved_stderr = -1;

/* Sends stderr to a temp file and returns its descriptor for reading back;
 * release_stderr() puts it back (matters when CK_FORK=no). */
static int capture_stderr(void)
{
    char path[] = "/tmp/vigil-test-log-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    return fd;
}

static void release_stderr(int fd)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    close(fd);
}

START_TEST(test_log_lines)
{
    int fd = capture_stderr();
    vg_log_set_level(VG_LOG_INFO);
    vg_debug("hidden %d", 1);
    vg_info("source %s up", "hall-1");
    vg_err("two\nlines\r");
    vg_log_set_level(VG_LOG_ERR);
    vg_warn("hidden too");
    char buf[256] = {0};
    ck_assert_int_gt(pread(fd, buf, sizeof(buf) - 1, 0), 0);
    release_stderr(fd);
    ck_assert_str_eq(buf, "<6>source hall-1 up\n<3>two lines \n");
}
END_TEST

START_TEST(test_log_long_line)
{
    int fd = capture_stderr();
    vg_log_set_level(VG_LOG_DEBUG);
    char big[5000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    vg_notice("%s", big);
    char buf[8192] = {0};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    release_stderr(fd);
    ck_assert_int_gt(n, 3);
    ck_assert_int_lt(n, 5000);
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert_ptr_eq(strchr(buf, '\n'), &buf[n - 1]);
    ck_assert(strncmp(buf, "<5>zzz", 6) == 0);
}
END_TEST

/* ---- UTF-8 ---- */

#define FFFD VG_UTF8_REPLACEMENT

static void assert_copies(const char *in, const char *want)
{
    char out[64];
    memset(out, 'x', sizeof(out));
    size_t n = vg_utf8_copy(out, sizeof(out), in);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert(vg_utf8_valid(out, n));
    char *dup = vg_utf8_dup(in);
    ck_assert_str_eq(dup, want);
    free(dup);
}

/* Each byte of a sequence that is not UTF-8 becomes U+FFFD; valid text,
 * one to four bytes a character, passes unchanged. */
START_TEST(test_utf8_copy_replaces)
{
    assert_copies("", "");
    assert_copies("plain ascii", "plain ascii");
    assert_copies("\xd0\x9a\xd0\xb0\xd0\xbc\xd0\xb5\xd1\x80\xd0\xb0 \xe2\x82\xac \xf0\x9f\x93\xb9",
                  "\xd0\x9a\xd0\xb0\xd0\xbc\xd0\xb5\xd1\x80\xd0\xb0 \xe2\x82\xac \xf0\x9f\x93\xb9");
    assert_copies("\xff", FFFD);                             /* never a UTF-8 byte */
    assert_copies("a\x80z", "a" FFFD "z");                   /* stray continuation */
    assert_copies("\xc0\xaf", FFFD FFFD);                    /* overlong '/' */
    assert_copies("\xc1\xbf", FFFD FFFD);                    /* overlong DEL */
    assert_copies("\xe0\x80\xaf", FFFD FFFD FFFD);           /* overlong '/', 3 bytes */
    assert_copies("\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD);  /* overlong '/', 4 bytes */
    assert_copies("\xed\xa0\x80", FFFD FFFD FFFD);           /* high surrogate */
    assert_copies("\xed\xbf\xbf", FFFD FFFD FFFD);           /* low surrogate */
    assert_copies("\xed\x9f\xbf", "\xed\x9f\xbf");           /* U+D7FF, just below */
    assert_copies("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");   /* U+10FFFF, the last */
    assert_copies("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);  /* past U+10FFFF */
    assert_copies("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD);
    assert_copies("x\xe2\x82", "x" FFFD FFFD);               /* cut at the end */
    assert_copies("\xe2\x82y", FFFD FFFD "y");               /* cut in the middle */
    assert_copies("\xf0\x9f\x93", FFFD FFFD FFFD);
    assert_copies("\xc3", FFFD);
}
END_TEST

/* A copy that does not fit ends before a whole character, never inside. */
START_TEST(test_utf8_copy_never_cuts)
{
    char out[8];
    ck_assert_uint_eq(vg_utf8_copy(out, 4, "ab\xe2\x82\xac"), 2);
    ck_assert_str_eq(out, "ab");
    ck_assert_uint_eq(vg_utf8_copy(out, 6, "ab\xe2\x82\xac"), 5);
    ck_assert_str_eq(out, "ab\xe2\x82\xac");
    ck_assert_uint_eq(vg_utf8_copy(out, 3, "a\xff"), 1); /* no room for U+FFFD */
    ck_assert_str_eq(out, "a");
    ck_assert_uint_eq(vg_utf8_copy(out, 1, "abc"), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

/* A fixed-size field (an audit row's) made valid in place, also when it was
 * filled to the last byte by a copy that cut a character. */
START_TEST(test_utf8_fix)
{
    char field[8];
    memcpy(field, "abcde\xe2\x82", 8); /* what a copy cutting the euro sign leaves */
    ck_assert(!vg_utf8_valid(field, strlen(field)));
    vg_utf8_fix(field, sizeof(field));
    ck_assert_str_eq(field, "abcde"); /* U+FFFD U+FFFD would not fit */
    snprintf(field, sizeof(field), "%s", "\xffok");
    vg_utf8_fix(field, sizeof(field));
    ck_assert_str_eq(field, FFFD "ok");
    memset(field, 'a', sizeof(field)); /* no terminator at all */
    vg_utf8_fix(field, sizeof(field));
    ck_assert_uint_eq(strlen(field), sizeof(field) - 1);
    snprintf(field, sizeof(field), "%s", "fine");
    vg_utf8_fix(field, sizeof(field));
    ck_assert_str_eq(field, "fine");
}
END_TEST

static void agree_with_jansson(const char *bytes, size_t len)
{
    json_t *j = json_stringn(bytes, len);
    ck_assert_msg(vg_utf8_valid(bytes, len) == (j != NULL), "%02x %02x %02x %02x (%zu)",
                  (unsigned char)bytes[0], len > 1 ? (unsigned char)bytes[1] : 0,
                  len > 2 ? (unsigned char)bytes[2] : 0, len > 3 ? (unsigned char)bytes[3] : 0,
                  len);
    json_decref(j);
    char in[8] = {0}, out[16];
    memcpy(in, bytes, len);
    size_t n = vg_utf8_copy(out, sizeof(out), in);
    j = json_stringn(out, n);
    ck_assert_ptr_nonnull(j); /* what the copy makes, jansson always takes */
    json_decref(j);
}

/* The property the web side relies on: vg_utf8_valid says yes exactly when
 * jansson accepts the string, over every byte, every pair after a non-ASCII
 * byte, and the longer sequences around each boundary of their continuation
 * bytes. */
START_TEST(test_utf8_agrees_with_jansson)
{
    static const unsigned char edge[] = {0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    const size_t n_edge = sizeof(edge);
    unsigned char b[4];
    for (int x = 1; x < 256; x++) {
        b[0] = (unsigned char)x;
        agree_with_jansson((const char *)b, 1);
        for (int y = 1; x >= 0x80 && y < 256; y++) { /* after ASCII: the 1-byte case again */
            b[1] = (unsigned char)y;
            agree_with_jansson((const char *)b, 2);
            for (size_t k = 0; x >= 0xe0 && k < n_edge; k++) {
                b[2] = edge[k];
                agree_with_jansson((const char *)b, 3);
                for (size_t m = 0; x >= 0xf0 && memchr(edge, y, n_edge) && m < n_edge; m++) {
                    b[3] = edge[m];
                    agree_with_jansson((const char *)b, 4);
                }
            }
        }
    }
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("time");
    tcase_add_test(tc, test_format_epoch);
    tcase_add_test(tc, test_format_truncates_ms);
    tcase_add_test(tc, test_format_negative);
    tcase_add_test(tc, test_parse_rfc3339);
    tcase_add_test(tc, test_parse_fraction);
    tcase_add_test(tc, test_parse_offset);
    tcase_add_test(tc, test_parse_unix_seconds);
    tcase_add_loop_test(tc, test_parse_rejects, 0, sizeof(bad_times) / sizeof(bad_times[0]));
    tcase_add_test(tc, test_deadline_us);
    tcase_add_test(tc, test_list_append);
    tcase_add_test(tc, test_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_set_timeout(tc, 60); /* the jansson cross-check, under sanitizers */
    tcase_add_test(tc, test_source_names);
    tcase_add_test(tc, test_redact);
    tcase_add_test(tc, test_redact_small_buffer);
    tcase_add_test(tc, test_alloc);
    tcase_add_test(tc, test_utf8_copy_replaces);
    tcase_add_test(tc, test_utf8_copy_never_cuts);
    tcase_add_test(tc, test_utf8_fix);
    tcase_add_test(tc, test_utf8_agrees_with_jansson);
    suite_add_tcase(s, tc);

    tc = tcase_create("fs");
    tcase_add_checked_fixture(tc, fs_setup, fs_teardown);
    tcase_add_test(tc, test_mkdir_p);
    tcase_add_test(tc, test_mkdir_p_over_file);
    tcase_add_test(tc, test_fsync_dir);
    tcase_add_test(tc, test_write_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("log");
    tcase_add_test(tc, test_log_parse_level);
    tcase_add_test(tc, test_log_lines);
    tcase_add_test(tc, test_log_long_line);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(util_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
