/* Check suite for core/config.c: every rule of the vigil.conf format, the
 * "file:line: reason" messages, and that a URL's password never reaches one. */
#include "core/config.h"
#include "core/errors.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET "s3cretpw"

static char conf_path[64];
static char err[512];
static vg_config_t cfg;

/* Writes text to a fresh temp file, loads it into cfg and removes the file;
 * returns vg_config_load's status. err holds the message. */
static int load(const char *text)
{
    snprintf(conf_path, sizeof(conf_path), "/tmp/vigil-test-config-XXXXXX");
    int fd = mkstemp(conf_path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    memset(err, 0, sizeof(err));
    int rc = vg_config_load(conf_path, &cfg, err, sizeof(err));
    unlink(conf_path);
    return rc;
}

static void teardown(void)
{
    vg_config_free(&cfg);
}

#define assert_err_has(needle)                                                                 \
    ck_assert_msg(strstr(err, (needle)) != NULL, "error \"%s\" lacks \"%s\"", err, (needle))

/* Loads text, expects VG_ECONFIG and an error starting "path:line:". */
static void expect_error_at(const char *text, int line)
{
    ck_assert_int_eq(load(text), VG_ECONFIG);
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "%s:%d: ", conf_path, line);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "error \"%s\" does not start \"%s\"",
                  err, prefix);
    ck_assert_ptr_null(cfg.sources);
    ck_assert_ptr_null(cfg.path);
}

START_TEST(test_good_file)
{
    const char *text = "; vigil.conf\n"
                       "[server]\n"
                       "data_dir = /srv/vigil   ; on the big disk\n"
                       "log_level = debug\n"
                       "\n"
                       "[archive]\n"
                       "segment_seconds = 30\n"
                       "\n"
                       "[source hall-1]\n"
                       "url = rtsp://user:pass@10.0.0.5/stream1\n"
                       "kind = video\n"
                       "rtsp_transport = udp\n"
                       "\n"
                       "# contact centre line\n"
                       "[source line-42]\n"
                       "url = rtsps://pbx.example:322/line42?x=1\n"
                       "kind = audio\n"
                       "rtsp_transport = tcp\n";
    ck_assert_int_eq(load(text), VG_OK);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(cfg.path, conf_path);
    ck_assert_str_eq(cfg.data_dir, "/srv/vigil");
    ck_assert_int_eq(cfg.log_level, VG_LOG_DEBUG);
    ck_assert_int_eq(cfg.segment_seconds, 30);
    ck_assert_uint_eq(cfg.n_sources, 2);
    ck_assert_str_eq(cfg.sources[0].name, "hall-1");
    ck_assert_str_eq(cfg.sources[0].url, "rtsp://user:pass@10.0.0.5/stream1");
    ck_assert_int_eq(cfg.sources[0].kind, VG_SOURCE_VIDEO);
    ck_assert_int_eq(cfg.sources[0].transport, VG_TRANSPORT_UDP);
    ck_assert_str_eq(cfg.sources[1].name, "line-42");
    ck_assert_str_eq(cfg.sources[1].url, "rtsps://pbx.example:322/line42?x=1");
    ck_assert_int_eq(cfg.sources[1].kind, VG_SOURCE_AUDIO);
    ck_assert_int_eq(cfg.sources[1].transport, VG_TRANSPORT_TCP);
}
END_TEST

START_TEST(test_defaults)
{
    ck_assert_int_eq(load(""), VG_OK);
    ck_assert_str_eq(cfg.data_dir, "/var/lib/vigil");
    ck_assert_int_eq(cfg.log_level, VG_LOG_INFO);
    ck_assert_int_eq(cfg.segment_seconds, 60);
    ck_assert_uint_eq(cfg.n_sources, 0);
    vg_config_free(&cfg);

    ck_assert_int_eq(load("[server]\n[archive]\n[source cam]\nurl = rtsp://cam/\n"), VG_OK);
    ck_assert_uint_eq(cfg.n_sources, 1);
    ck_assert_int_eq(cfg.sources[0].kind, VG_SOURCE_VIDEO);
    ck_assert_int_eq(cfg.sources[0].transport, VG_TRANSPORT_TCP);
    ck_assert_str_eq(cfg.data_dir, "/var/lib/vigil");
}
END_TEST

/* Indented keys, CRLF endings and a BOM are what hand-edited files look like. */
START_TEST(test_layout_tolerated)
{
    const char *text = "\xEF\xBB\xBF[server]\r\n"
                       "    data_dir = /data\r\n"
                       "\tlog_level = notice\r\n"
                       "  [ source  cam-1 ]\r\n"
                       "  url = rtsp://[fe80::1]:8554/a\r\n";
    ck_assert_int_eq(load(text), VG_OK);
    ck_assert_str_eq(cfg.data_dir, "/data");
    ck_assert_int_eq(cfg.log_level, VG_LOG_NOTICE);
    ck_assert_uint_eq(cfg.n_sources, 1);
    ck_assert_str_eq(cfg.sources[0].name, "cam-1");
    ck_assert_str_eq(cfg.sources[0].url, "rtsp://[fe80::1]:8554/a");
}
END_TEST

START_TEST(test_unknown_key)
{
    expect_error_at("[server]\ndata_dir = /x\n[archive]\nsegment_secs = 5\n", 4);
    assert_err_has("unknown key 'segment_secs' in [archive]");
}
END_TEST

START_TEST(test_unknown_key_in_source)
{
    expect_error_at("[source hall-1]\nurl = rtsp://h/\nfps = 5\n", 3);
    assert_err_has("unknown key 'fps' in [source hall-1]");
}
END_TEST

START_TEST(test_key_outside_section)
{
    expect_error_at("data_dir = /x\n", 1);
    assert_err_has("'data_dir'");
}
END_TEST

START_TEST(test_unknown_section)
{
    expect_error_at("[server]\n\n[recording]\nport = 8554\n", 3);
    assert_err_has("unknown section [recording]");
    /* A section with no keys is still checked. */
    expect_error_at("[sources]\n", 1);
    assert_err_has("[sources]");
}
END_TEST

START_TEST(test_syntax_error)
{
    expect_error_at("[server]\ndata_dir /x\n", 2);
    expect_error_at("[server\ndata_dir = /x\n", 1);
}
END_TEST

static const char *bad_names[] = {
    "Hall-1",
    "-hall",
    "hall_1",
    "hall.1",
    "a234567890123456789012345678901234567890123456789012345678901234", /* 64 */
    "",
};

START_TEST(test_bad_source_name)
{
    char text[256];
    snprintf(text, sizeof(text), "[server]\n[source %s]\nurl = rtsp://h/\n", bad_names[_i]);
    expect_error_at(text, 2);
    char want[128];
    snprintf(want, sizeof(want), "bad source name '%s' (use a-z, 0-9 and -, up to 63 characters)",
             bad_names[_i]);
    assert_err_has(want);
}
END_TEST

START_TEST(test_bare_source_section)
{
    expect_error_at("[source]\nurl = rtsp://h/\n", 1);
    assert_err_has("bad source name ''");
}
END_TEST

/* 63 characters is longer than libinih's own section-name buffer. */
START_TEST(test_long_source_name)
{
    const char *name = "a23456789012345678901234567890123456789012345678901234567890123";
    ck_assert_uint_eq(strlen(name), 63);
    char text[256];
    snprintf(text, sizeof(text), "[source %s]\nurl = rtsp://h/\nkind = audio\n", name);
    ck_assert_int_eq(load(text), VG_OK);
    ck_assert_str_eq(cfg.sources[0].name, name);
    ck_assert_ptr_nonnull(vg_config_find_source(&cfg, name));
}
END_TEST

static const char *bad_segments[] = {"1", "301", "abc", "10x", "0", "-5", "", "99999999999999999999"};

START_TEST(test_segment_seconds_rejected)
{
    char text[128];
    snprintf(text, sizeof(text), "[archive]\nsegment_seconds = %s\n", bad_segments[_i]);
    expect_error_at(text, 2);
    assert_err_has("segment_seconds");
    assert_err_has("from 2 to 300");
}
END_TEST

START_TEST(test_segment_seconds_bounds)
{
    ck_assert_int_eq(load("[archive]\nsegment_seconds = 2\n"), VG_OK);
    ck_assert_int_eq(cfg.segment_seconds, 2);
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[archive]\nsegment_seconds = 300\n"), VG_OK);
    ck_assert_int_eq(cfg.segment_seconds, 300);
}
END_TEST

START_TEST(test_archive_durability_keys)
{
    ck_assert_int_eq(load("[archive]\n"), VG_OK);
    ck_assert_int_eq(cfg.sync_seconds, 5);
    ck_assert_int_eq(cfg.fragment_max_seconds, 4);
    ck_assert_int_eq(cfg.fragment_max_mib, 16);
    ck_assert_int_eq(cfg.alarm_hold_seconds, 300);
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[archive]\nsync_seconds = 1\nfragment_max_seconds = 10\n"
                          "fragment_max_mib = 64\nalarm_hold_seconds = 15\n"),
                     VG_OK);
    ck_assert_int_eq(cfg.sync_seconds, 1);
    ck_assert_int_eq(cfg.fragment_max_seconds, 10);
    ck_assert_int_eq(cfg.fragment_max_mib, 64);
    ck_assert_int_eq(cfg.alarm_hold_seconds, 15);
}
END_TEST

static const char *bad_archive[] = {
    "sync_seconds = 0",         "sync_seconds = 6",        "sync_seconds = x",
    "fragment_max_seconds = 0", "fragment_max_seconds = 11", "fragment_max_mib = 0",
    "fragment_max_mib = 65",    "fragment_max_mib = 1.5",  "alarm_hold_seconds = 0",
    "alarm_hold_seconds = 86401",
};

START_TEST(test_archive_durability_rejected)
{
    char text[128];
    snprintf(text, sizeof(text), "[archive]\n%s\n", bad_archive[_i]);
    expect_error_at(text, 2);
    char key[32];
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(bad_archive[_i], " "), bad_archive[_i]);
    assert_err_has(key);
    assert_err_has("must be an integer from");
}
END_TEST

/* calls: [calls] announcement, announcement_window; [source] call_detect,
 * call_gap_seconds, call_min_seconds, announcement */
START_TEST(test_calls_dsp_keys)
{
    char path[] = "/tmp/vigil-test-ann-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char text[512];
    ck_assert_int_eq(load("[source l]\nurl = rtsp://h/\nkind = audio\n"), VG_OK);
    ck_assert_ptr_null(cfg.calls.announcement);
    ck_assert_int_eq(cfg.calls.announcement_window, 20);
    ck_assert_int_eq(cfg.sources[0].call_detect_vad, 0);
    ck_assert_int_eq(cfg.sources[0].call_gap_seconds, 8);
    ck_assert_int_eq(cfg.sources[0].call_min_seconds, 2);
    vg_config_free(&cfg);
    snprintf(text, sizeof text,
             "[calls]\nannouncement = %s\nannouncement_window = 30\n[source l]\nurl = rtsp://h/\n"
             "kind = audio\ncall_detect = vad\ncall_gap_seconds = 5\ncall_min_seconds = 0\n"
             "announcement = %s\n", path, path);
    ck_assert_int_eq(load(text), VG_OK);
    ck_assert_str_eq(cfg.calls.announcement, path);
    ck_assert_int_eq(cfg.calls.announcement_window, 30);
    ck_assert_int_eq(cfg.sources[0].call_detect_vad, 1);
    ck_assert_int_eq(cfg.sources[0].call_gap_seconds, 5);
    ck_assert_int_eq(cfg.sources[0].call_min_seconds, 0);
    ck_assert_str_eq(cfg.sources[0].announcement, path);
    vg_config_free(&cfg);
    /* [queue NAME]: a queue's own reference, named as the PBX names it */
    snprintf(text, sizeof text, "[queue Credit cards]\nannouncement = %s\n[queue q2]\n"
             "announcement = %s\n", path, path);
    ck_assert_int_eq(load(text), VG_OK);
    ck_assert_uint_eq(cfg.n_queues, 2);
    ck_assert_str_eq(vg_config_find_queue(&cfg, "Credit cards")->announcement, path);
    ck_assert_ptr_nonnull(vg_config_find_queue(&cfg, "q2"));
    ck_assert_ptr_null(vg_config_find_queue(&cfg, "q3"));
    vg_config_free(&cfg);
    expect_error_at("[queue q]\n", 1);
    assert_err_has("queue 'q' has no announcement");
    expect_error_at("[queue q]\nannouncement = /nonexistent/ann.wav\n", 2);
    expect_error_at("[queue q]\nwindow = 20\n", 2);
    assert_err_has("unknown key 'window' in [queue q]");
    snprintf(text, sizeof text, "[queue q]\nannouncement = %s\n[queue q]\n", path);
    expect_error_at(text, 3);
    assert_err_has("duplicate section [queue q]");
    expect_error_at("[queue a[b]\n", 1);
    expect_error_at("[calls]\nannouncement = /nonexistent/ann.wav\n", 2);
    assert_err_has("not a readable file");
    expect_error_at("[calls]\nannouncement = relative.wav\n", 2);
    expect_error_at("[calls]\nannouncement = /tmp\n", 2);
    expect_error_at("[calls]\nannouncement_window = 4\n", 2);
    expect_error_at("[calls]\nannouncement_window = 121\n", 2);
    expect_error_at("[calls]\nwindow = 20\n", 2);
    assert_err_has("unknown key 'window' in [calls]");
    expect_error_at("[calls]\n[calls]\n", 2);
    expect_error_at("[source l]\nurl = rtsp://h/\nkind = audio\ncall_detect = yes\n", 4);
    assert_err_has("vad or off");
    expect_error_at("[source l]\nurl = rtsp://h/\nkind = audio\ncall_gap_seconds = 0\n", 4);
    expect_error_at("[source l]\nurl = rtsp://h/\nkind = audio\ncall_min_seconds = 601\n", 4);
    /* a camera has no calls */
    expect_error_at("[source c]\nurl = rtsp://h/\ncall_detect = vad\n", 1);
    assert_err_has("needs kind = audio");
    unlink(path);
}
END_TEST

START_TEST(test_exports_keep_days)
{
    ck_assert_int_eq(load("[server]\n"), VG_OK);
    ck_assert_int_eq(cfg.exports_keep_days, 30);
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[exports]\nkeep_days = 7\n"), VG_OK);
    ck_assert_int_eq(cfg.exports_keep_days, 7);
    vg_config_free(&cfg);
    expect_error_at("[exports]\nkeep_days = 0\n", 2);
    assert_err_has("keep_days");
    expect_error_at("[exports]\nretention = 1\n", 2);
    assert_err_has("unknown key 'retention' in [exports]");
    expect_error_at("[exports]\nkeep_days = 1\n[exports]\n", 3);
}
END_TEST

/* calls: desks, pbx_extension, call_metadata_days, require_access_reason */
START_TEST(test_calls_keys)
{
    const char *base = "[server]\nrequire_access_reason = yes\n"
                       "[retention]\ncall_metadata_days = 90\nmin_days = 1\nkeep_days = 1\n"
                       "[source line-1]\nurl = rtsp://h/1\nkind = audio\npbx_extension = 101\n"
                       "[source hall-1]\nurl = rtsp://h/2\n"
                       "[source hall-2]\nurl = rtsp://h/3\n"
                       "[desk desk-1]\nlines = line-1\ncameras = hall-1, hall-2\n";
    ck_assert_int_eq(load(base), VG_OK);
    ck_assert_int_eq(cfg.http.require_access_reason, 1);
    ck_assert_int_eq(cfg.retention.call_metadata_days, 90);
    ck_assert_str_eq(vg_config_find_source(&cfg, "line-1")->pbx_extension, "101");
    const vg_desk_config_t *d = vg_config_find_desk(&cfg, "desk-1");
    ck_assert_ptr_nonnull(d);
    ck_assert(d->n_lines == 1 && d->n_cameras == 2);
    ck_assert_str_eq(d->cameras[1], "hall-2");
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[server]\n"), VG_OK);
    ck_assert_int_eq(cfg.http.require_access_reason, 0);
    ck_assert_int_eq(cfg.retention.call_metadata_days, 0);
    vg_config_free(&cfg);
    expect_error_at("[server]\nrequire_access_reason = maybe\n", 2);
    expect_error_at("[retention]\ncall_metadata_days = -1\n", 2);
    expect_error_at("[source a]\nurl = rtsp://h/\nkind = audio\npbx_extension = 1 01\n", 4);
    expect_error_at("[source a]\nurl = rtsp://h/\npbx_extension = 101\n"
                    "[source b]\nurl = rtsp://h/\npbx_extension = 101\n", 6);
    assert_err_has("already the extension");
    expect_error_at("[desk Desk]\n", 1);
    expect_error_at("[desk d]\nlines = Bad Name\n", 2);
    expect_error_at("[desk d]\nlines = a\n[desk d]\n", 3);
    /* a desk naming a camera as a line, or an unknown source: the whole file */
    ck_assert_int_eq(load("[source hall-1]\nurl = rtsp://h/2\n[desk d]\nlines = hall-1\n"),
                     VG_ECONFIG);
    assert_err_has("not an audio source");
    ck_assert_int_eq(load("[source l]\nurl = rtsp://h/2\nkind = audio\n[desk d]\nlines = l\n"
                          "cameras = nope\n"), VG_ECONFIG);
    assert_err_has("not a video source");
    ck_assert_int_eq(load("[desk d]\ncameras = a\n"), VG_ECONFIG);
    assert_err_has("has no lines");
}
END_TEST

START_TEST(test_bad_kind)
{
    expect_error_at("[source a]\nurl = rtsp://h/\nkind = vidoe\n", 3);
    assert_err_has("kind");
    assert_err_has("video or audio");
}
END_TEST

START_TEST(test_bad_transport)
{
    expect_error_at("[source a]\nurl = rtsp://h/\nrtsp_transport = http\n", 3);
    assert_err_has("rtsp_transport");
    assert_err_has("tcp or udp");
}
END_TEST

START_TEST(test_bad_log_level)
{
    expect_error_at("[server]\nlog_level = verbose\n", 2);
    assert_err_has("log_level");
}
END_TEST

START_TEST(test_trusted_proxies)
{
    ck_assert_int_eq(load("[server]\ntrusted_proxies = 10.0.0.5, ::1\n"), VG_OK);
    ck_assert_str_eq(cfg.http.trusted_proxies, "10.0.0.5,::1");
    ck_assert(vg_config_proxy_trusted(&cfg, "10.0.0.5"));
    ck_assert(vg_config_proxy_trusted(&cfg, "0:0::1"));
    ck_assert(!vg_config_proxy_trusted(&cfg, "10.0.0.50"));
    ck_assert(!vg_config_proxy_trusted(&cfg, "127.0.0.1"));
    vg_config_free(&cfg);
    /* without the key, nobody's X-Forwarded-For is believed */
    ck_assert_int_eq(load("[server]\n"), VG_OK);
    ck_assert_ptr_null(cfg.http.trusted_proxies);
    ck_assert(!vg_config_proxy_trusted(&cfg, "127.0.0.1"));
    vg_config_free(&cfg);
    /* names are refused: trust is never decided through DNS */
    expect_error_at("[server]\ntrusted_proxies = 10.0.0.5, proxy.example\n", 2);
    assert_err_has("trusted_proxies");
}
END_TEST

START_TEST(test_missing_url)
{
    expect_error_at("[server]\n[source hall-1]\nkind = audio\n[source hall-2]\nurl = rtsp://h/\n", 2);
    assert_err_has("source 'hall-1' has no url");
    /* The last section is checked at end of file too, even with no keys. */
    expect_error_at("[source a]\nurl = rtsp://h/\n[source hall-3]\n", 3);
    assert_err_has("source 'hall-3' has no url");
}
END_TEST

static const char *bad_urls[] = {
    "http://admin:" SECRET "@10.0.0.5/stream1",
    "RTSP://admin:" SECRET "@10.0.0.5/stream1",
    "admin:" SECRET "@10.0.0.5/stream1",
    "rtsp://admin:" SECRET "@/stream1",
    "rtsp://",
    "rtsp://admin:" SECRET "@cam:/s",
    "rtsp://admin:" SECRET "@cam:99999/s",
    "rtsp://admin:" SECRET "@cam:80x/s",
    "rtsp://admin:" SECRET "@[]/s",
    "rtsp://admin:" SECRET "@cam/a b",
    "rtsp://admin:" SECRET "@cam/a\x01",
    "",
};

START_TEST(test_bad_url)
{
    char text[256];
    snprintf(text, sizeof(text), "[source cam]\nurl = %s\n", bad_urls[_i]);
    expect_error_at(text, 2);
    assert_err_has("url of source 'cam'");
    ck_assert_msg(strstr(err, SECRET) == NULL, "password leaked: %s", err);
    ck_assert_msg(strstr(err, "10.0.0.5") == NULL, "url echoed: %s", err);
}
END_TEST

START_TEST(test_good_urls)
{
    const char *text = "[source a]\nurl = rtsp://cam\n"
                       "[source b]\nurl = rtsp://u:p@ss@cam:554/x\n"
                       "[source c]\nurl = rtsps://cam.example/live?token=1\n"
                       "[source d]\nurl = rtsp://[2001:db8::5]/s\n";
    ck_assert_int_eq(load(text), VG_OK);
    ck_assert_uint_eq(cfg.n_sources, 4);
}
END_TEST

/* Whatever the error, a password typed anywhere in the file stays out of it. */
START_TEST(test_credentials_never_in_errors)
{
    static const char *texts[] = {
        "[source a]\nurl = rtsp://u:" SECRET "@h/\nurl = rtsp://u:" SECRET "@h/\n",
        "[source a]\nkind = rtsp://u:" SECRET "@h/\n",
        "[source a]\nrtsp_transport = rtsp://u:" SECRET "@h/\n",
        "[server]\ndata_dir = rtsp://u:" SECRET "@h/\n",
        "[server]\nlog_level = rtsp://u:" SECRET "@h/\n",
        "[archive]\nsegment_seconds = rtsp://u:" SECRET "@h/\n",
        "[source a]\nurl = rtsp://u:" SECRET "@h/\nstream = rtsp://u:" SECRET "@h/\n",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        ck_assert_int_eq(load(texts[i]), VG_ECONFIG);
        ck_assert_str_ne(err, "");
        ck_assert_msg(strstr(err, SECRET) == NULL, "case %zu leaked: %s", i, err);
    }
}
END_TEST

START_TEST(test_duplicate_source)
{
    expect_error_at("[source a]\nurl = rtsp://h/1\n[source b]\nurl = rtsp://h/2\n"
                    "[source a]\nurl = rtsp://h/3\n",
                    5);
    assert_err_has("duplicate");
    assert_err_has("source a");
}
END_TEST

START_TEST(test_duplicate_key)
{
    expect_error_at("[source a]\nurl = rtsp://h/1\nkind = audio\nkind = video\n", 4);
    assert_err_has("duplicate key 'kind'");
    expect_error_at("[archive]\nsegment_seconds = 5\n\nsegment_seconds = 5\n", 4);
    assert_err_has("duplicate key 'segment_seconds'");
}
END_TEST

START_TEST(test_duplicate_section)
{
    expect_error_at("[server]\ndata_dir = /a\n[archive]\n[server]\nlog_level = info\n", 4);
    assert_err_has("duplicate section [server]");
}
END_TEST

START_TEST(test_relative_data_dir)
{
    expect_error_at("[server]\ndata_dir = var/lib/vigil\n", 2);
    assert_err_has("data_dir");
    assert_err_has("absolute");
}
END_TEST

START_TEST(test_first_error_wins)
{
    expect_error_at("[server]\nfoo = 1\nbar = 2\n[nope]\nbaz\n", 2);
    assert_err_has("'foo'");
    /* A syntax error libinih finds before our own error is the one reported. */
    expect_error_at("[server]\njunk line\nfoo = 1\n", 2);
}
END_TEST

START_TEST(test_long_line)
{
    char text[1024];
    char path[600];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    snprintf(text, sizeof(text), "[source a]\nurl = rtsp://h/%s\n", path);
    /* Must not be split into two lines and parsed as something else. */
    expect_error_at(text, 2);
    assert_err_has("too long");
}
END_TEST

START_TEST(test_nonexistent_file)
{
    ck_assert_int_eq(vg_config_load("/nonexistent/vigil.conf", &cfg, err, sizeof(err)), VG_EIO);
    ck_assert_str_eq(err, "/nonexistent/vigil.conf: cannot read: No such file or directory");
    ck_assert_ptr_null(cfg.path);
}
END_TEST

START_TEST(test_directory_is_io_error)
{
    ck_assert_int_eq(vg_config_load("/tmp", &cfg, err, sizeof(err)), VG_EIO);
    assert_err_has("cannot read");
}
END_TEST

START_TEST(test_small_err_buffer)
{
    char small[8];
    memset(small, 'x', sizeof(small));
    ck_assert_int_eq(vg_config_load("/nonexistent/vigil.conf", &cfg, small, sizeof(small)), VG_EIO);
    ck_assert_str_eq(small, "/nonexi");
    ck_assert_int_eq(vg_config_load("/nonexistent/vigil.conf", &cfg, NULL, 0), VG_EIO);
}
END_TEST

START_TEST(test_find_source)
{
    ck_assert_int_eq(load("[source a]\nurl = rtsp://h/1\n[source b]\nurl = rtsp://h/2\n"), VG_OK);
    const vg_source_config_t *b = vg_config_find_source(&cfg, "b");
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(b->url, "rtsp://h/2");
    ck_assert_ptr_eq(vg_config_find_source(&cfg, "a"), &cfg.sources[0]);
    ck_assert_ptr_null(vg_config_find_source(&cfg, "c"));
    ck_assert_ptr_null(vg_config_find_source(&cfg, ""));
    ck_assert_ptr_null(vg_config_find_source(&cfg, NULL));
    ck_assert_ptr_null(vg_config_find_source(NULL, "a"));
}
END_TEST

START_TEST(test_free_is_safe)
{
    vg_config_t zero;
    memset(&zero, 0, sizeof(zero));
    vg_config_free(&zero);
    vg_config_free(NULL);
    ck_assert_int_eq(load("[source a]\nurl = rtsp://h/1\n"), VG_OK);
    vg_config_free(&cfg);
    vg_config_free(&cfg);
    ck_assert_ptr_null(cfg.sources);
    ck_assert_uint_eq(cfg.n_sources, 0);
}
END_TEST

START_TEST(test_http_keys)
{
    ck_assert_int_eq(load(""), VG_OK);
    ck_assert_str_eq(cfg.http.listen, "127.0.0.1:8080");
    ck_assert_ptr_null(cfg.http.tls_cert);
    ck_assert_int_eq(cfg.http.session_idle_minutes, 30);
    ck_assert_int_eq(cfg.http.session_max_hours, 12);
    ck_assert_int_eq(cfg.audit_checkpoint_seconds, 300);
    vg_config_free(&cfg);

    ck_assert_int_eq(load("[server]\nhttp_listen = [::1]:8443\ntls_cert = /etc/hostname\n"
                          "tls_key = /etc/hostname\nsession_idle_minutes = 5\n"
                          "session_max_hours = 1\naudit_checkpoint_seconds = 1\n"), VG_OK);
    ck_assert_int_eq(cfg.audit_checkpoint_seconds, 1);
    ck_assert_str_eq(cfg.http.listen, "[::1]:8443");
    ck_assert_str_eq(cfg.http.tls_key, "/etc/hostname");
    ck_assert_int_eq(cfg.http.session_idle_minutes, 5);
    ck_assert_int_eq(cfg.http.session_max_hours, 1);
    vg_config_free(&cfg);

    ck_assert_int_eq(load("[server]\nhttp_listen =\n"), VG_OK);
    ck_assert_str_eq(cfg.http.listen, "");
    vg_config_free(&cfg);

    char host[64];
    int port = 0;
    ck_assert_int_eq(vg_config_split_listen("[fe80::1]:80", host, sizeof(host), &port), VG_OK);
    ck_assert_str_eq(host, "fe80::1");
    ck_assert_int_eq(port, 80);
}
END_TEST

static const char *const bad_http[] = {
    "[server]\nhttp_listen = 127.0.0.1\n",
    "[server]\nhttp_listen = 127.0.0.1:0\n",
    "[server]\nhttp_listen = 127.0.0.1:70000\n",
    "[server]\nhttp_listen = ::1:8080\n",
    "[server]\nhttp_listen = :8080\n",
    "[server]\nhttp_listen = host name:80\n",
    "[server]\ntls_cert = /nonexistent/cert.pem\n",
    "[server]\nsession_idle_minutes = 0\n",
    "[server]\nsession_max_hours = 100000\n",
    "[server]\naudit_checkpoint_seconds = 0\n",
    "[server]\naudit_checkpoint_seconds = 301\n", /* at least every 5 minutes */
    "[server]\nui_dir = /nonexistent/ui\n",
    "[server]\nui_dir = /etc/hostname\n",
    "[server]\ntimezone = Mars/Olympus\n",
    "[server]\ntimezone = ../../etc/passwd\n",
    "[server]\ntimezone = /etc/localtime\n",
    "[server]\ntimezone = Europe/Moscow;rm\n",
    "[server]\ntimezone = Europe\n",      /* a directory of zones */
    "[server]\ntimezone = leapseconds\n", /* a table beside the zones, not one */
};

/* The UI's directory and the office's time zone: checked, then kept. */
START_TEST(test_ui_keys)
{
    ck_assert_int_eq(load("[server]\nui_dir = /tmp\ntimezone = Europe/Moscow\n"), VG_OK);
    ck_assert_str_eq(cfg.http.ui_dir, "/tmp");
    ck_assert_str_eq(cfg.http.timezone, "Europe/Moscow");
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[server]\n"), VG_OK);
    ck_assert_ptr_nonnull(cfg.http.ui_dir); /* the installed UI */
    ck_assert_ptr_null(cfg.http.timezone);  /* the system's */
    vg_config_free(&cfg);
}
END_TEST

START_TEST(test_http_bad)
{
    expect_error_at(bad_http[_i], 2);
}
END_TEST

START_TEST(test_tls_needs_both)
{
    expect_error_at("[server]\ntls_cert = /etc/hostname\n", 2);
    assert_err_has("tls_cert and tls_key go together");
    expect_error_at("[server]\n\ntls_key = /etc/hostname\n", 3);
}
END_TEST

START_TEST(test_relay_keys)
{
    ck_assert_int_eq(load("[source a]\nurl = rtsp://h/a\n"), VG_OK);
    ck_assert_str_eq(cfg.relay.rtsp_listen, "");
    ck_assert_int_eq(cfg.relay.max_clients, 64);
    ck_assert_int_eq(cfg.relay.max_clients_per_ip, 8);
    ck_assert_int_eq(cfg.relay.send_interval_ms, 150);
    ck_assert_int_eq(cfg.relay.allow_plain_credentials, 0);
    ck_assert_ptr_null(cfg.relay.push);
    ck_assert_int_eq(cfg.sources[0].relay, 1);
    ck_assert_ptr_null(vg_config_push_url(&cfg, &cfg.sources[0]));
    vg_config_free(&cfg);

    ck_assert_int_eq(load("[relay]\nrtsp_listen = 0.0.0.0:8554\nmax_clients = 10\n"
                          "max_clients_per_ip = 2\nsend_interval_ms = 0\n"
                          "allow_plain_credentials = yes\n"
                          "tls_cert = /etc/hostname\n"
                          "tls_key = /etc/hostname\n"
                          "push = rtsp://u:" SECRET "@central:8554/office-7/{source}\n"
                          "[source hall-1]\nurl = rtsp://h/a\n"
                          "[source hall-2]\nurl = rtsp://h/b\npush = srt://c:9000?mode=caller\n"
                          "[source hall-3]\nurl = rtsp://h/c\npush = off\n"
                          "[source hall-4]\nurl = rtsp://h/d\nrelay = off\n"), VG_OK);
    ck_assert_str_eq(cfg.relay.rtsp_listen, "0.0.0.0:8554");
    ck_assert_int_eq(cfg.relay.max_clients, 10);
    ck_assert_int_eq(cfg.relay.max_clients_per_ip, 2);
    ck_assert_int_eq(cfg.relay.send_interval_ms, 0);
    ck_assert_int_eq(cfg.relay.allow_plain_credentials, 1);
    ck_assert_str_eq(cfg.relay.tls_key, "/etc/hostname");
    char *url = vg_config_push_url(&cfg, &cfg.sources[0]);
    ck_assert_str_eq(url, "rtsp://u:" SECRET "@central:8554/office-7/hall-1");
    free(url);
    url = vg_config_push_url(&cfg, &cfg.sources[1]);
    ck_assert_str_eq(url, "srt://c:9000?mode=caller");
    free(url);
    ck_assert_ptr_null(vg_config_push_url(&cfg, &cfg.sources[2]));
    ck_assert_int_eq(cfg.sources[3].relay, 0);
    ck_assert_ptr_null(vg_config_push_url(&cfg, &cfg.sources[3]));
}
END_TEST

static const char *const bad_relay[] = {
    "[relay]\nrtsp_listen = 8554\n",
    "[relay]\nrtsp_listen = 127.0.0.1:0\n",
    "[relay]\nmax_clients = 0\n",
    "[relay]\nmax_clients_per_ip = 1001\n",
    "[relay]\nsend_interval_ms = 501\n",
    "[relay]\nsend_interval_ms = -1\n",
    "[relay]\npush = rtsp://central/office-7\n",       /* no {source} */
    "[relay]\npush = http://central/{source}\n",
    "[relay]\npush = rtsp://{source}.central/x\n",
    "[relay]\ntls_cert = /nonexistent.pem\n",
    "[relay]\nuser = x\n",
    "[relay]\nallow_plain_credentials = on\n",
    "[relay]\nallow_plain_credentials =\n",
    "[source a]\nrelay = maybe\n",
    "[source a]\npush = udp://central:1234\n",
};

/* [playback]: defaults, values, bounds, one section. */
START_TEST(test_playback_keys)
{
    ck_assert_int_eq(load("[source a]\nurl = rtsp://h/a\n"), VG_OK);
    ck_assert_int_eq(cfg.playback.wav_max_seconds, 4 * 3600);
    ck_assert_int_eq(cfg.playback.snapshot_workers, 2);
    ck_assert_int_eq(cfg.playback.snapshot_cache_mib, 256);
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[playback]\nwav_max_seconds = 60\nsnapshot_workers = 1\n"
                          "snapshot_cache_mib = 8\n"), VG_OK);
    ck_assert_int_eq(cfg.playback.wav_max_seconds, 60);
    ck_assert_int_eq(cfg.playback.snapshot_workers, 1);
    ck_assert_int_eq(cfg.playback.snapshot_cache_mib, 8);
    vg_config_free(&cfg);
    expect_error_at("[playback]\nsnapshot_workers = 0\n", 2);
    expect_error_at("[playback]\nwav_max_seconds = 604801\n", 2);
    expect_error_at("[playback]\nsnapshot_cache_mib = lots\n", 2);
    expect_error_at("[playback]\ntranscode = yes\n", 2);
    expect_error_at("[playback]\n[playback]\n", 2);
    /* the H.265 -> H.264 transcode: off by default, 2 at once */
    ck_assert_int_eq(load("[source a]\nurl = rtsp://h/a\n"), VG_OK);
    ck_assert_int_eq(cfg.playback.transcode_hevc, 0);
    ck_assert_int_eq(cfg.playback.transcode_max, 2);
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[playback]\ntranscode_hevc = yes\ntranscode_max = 1\n"), VG_OK);
    ck_assert_int_eq(cfg.playback.transcode_hevc, 1);
    ck_assert_int_eq(cfg.playback.transcode_max, 1);
    vg_config_free(&cfg);
    expect_error_at("[playback]\ntranscode_hevc = maybe\n", 2);
    expect_error_at("[playback]\ntranscode_max = 0\n", 2);
    expect_error_at("[playback]\ntranscode_max = 65\n", 2);
    /* a camera left out of it: [source] transcode = no (default yes) */
    ck_assert_int_eq(load("[source a]\nurl = rtsp://h/a\n[source b]\nurl = rtsp://h/b\n"
                          "transcode = no\n[source c]\nurl = rtsp://h/c\ntranscode = yes\n"), VG_OK);
    ck_assert_int_eq(cfg.sources[0].no_transcode, 0);
    ck_assert_int_eq(cfg.sources[1].no_transcode, 1);
    ck_assert_int_eq(cfg.sources[2].no_transcode, 0);
    vg_config_free(&cfg);
    expect_error_at("[source a]\nurl = rtsp://h/a\ntranscode = off\n", 3);
}
END_TEST

START_TEST(test_relay_bad)
{
    expect_error_at(bad_relay[_i], 2);
}
END_TEST

START_TEST(test_relay_push_password_not_echoed)
{
    expect_error_at("[relay]\npush = rtsp://u:" SECRET "@central/none\n", 2);
    ck_assert_ptr_null(strstr(err, SECRET));
    expect_error_at("[relay]\ntls_key = /etc/hostname\n", 2);
    assert_err_has("in [relay] go together");
}
END_TEST

/* Which keys hold secrets: what vigild's warning about a config readable by
 * everyone names (the warning itself: tests/integration_hostile.py). */
START_TEST(test_secrets_found)
{
    ck_assert(vg_url_has_secret("rtsp://admin:" SECRET "@cam/s1"));
    ck_assert(vg_url_has_secret("rtsp://admin:p@ss@cam/s1"));
    ck_assert(vg_url_has_secret("srt://central:9000?mode=caller&passphrase=" SECRET));
    ck_assert(vg_url_has_secret("rtsp://cam/s1?PASSWORD=x"));
    ck_assert(!vg_url_has_secret("rtsp://cam/s1"));
    ck_assert(!vg_url_has_secret("rtsp://viewer@cam/s1")); /* a user name alone */
    ck_assert(!vg_url_has_secret("rtsp://cam/path@1"));
    ck_assert(!vg_url_has_secret(NULL));
    ck_assert_int_eq(load("[server]\ndata_dir = /srv/v\n"
                          "[source cam1]\nurl = rtsp://cam/1\n"
                          "[source cam2]\nurl = rtsp://u:" SECRET "@cam/2\n"
                          "push = srt://c:9000?passphrase=" SECRET "\n"
                          "[relay]\npush = rtsp://central/{source}\n"),
                     VG_OK);
    char out[256];
    vg_config_secrets(&cfg, out, sizeof(out));
    ck_assert_str_eq(out, "[source cam2] url,[source cam2] push");
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[server]\ndata_dir = /srv/v\n[source cam1]\nurl = rtsp://cam/1\n"),
                     VG_OK);
    vg_config_secrets(&cfg, out, sizeof(out));
    ck_assert_str_eq(out, "");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_good_file);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_layout_tolerated);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_unknown_key_in_source);
    tcase_add_test(tc, test_key_outside_section);
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_syntax_error);
    tcase_add_loop_test(tc, test_bad_source_name, 0, sizeof(bad_names) / sizeof(bad_names[0]));
    tcase_add_test(tc, test_bare_source_section);
    tcase_add_test(tc, test_long_source_name);
    tcase_add_loop_test(tc, test_segment_seconds_rejected, 0,
                        sizeof(bad_segments) / sizeof(bad_segments[0]));
    tcase_add_test(tc, test_segment_seconds_bounds);
    tcase_add_test(tc, test_archive_durability_keys);
    tcase_add_loop_test(tc, test_archive_durability_rejected, 0,
                        sizeof(bad_archive) / sizeof(bad_archive[0]));
    tcase_add_test(tc, test_exports_keep_days);
    tcase_add_test(tc, test_calls_keys);
    tcase_add_test(tc, test_calls_dsp_keys);
    tcase_add_test(tc, test_bad_kind);
    tcase_add_test(tc, test_bad_transport);
    tcase_add_test(tc, test_bad_log_level);
    tcase_add_test(tc, test_trusted_proxies);
    tcase_add_test(tc, test_missing_url);
    tcase_add_loop_test(tc, test_bad_url, 0, sizeof(bad_urls) / sizeof(bad_urls[0]));
    tcase_add_test(tc, test_good_urls);
    tcase_add_test(tc, test_credentials_never_in_errors);
    tcase_add_test(tc, test_duplicate_source);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_duplicate_section);
    tcase_add_test(tc, test_relative_data_dir);
    tcase_add_test(tc, test_first_error_wins);
    tcase_add_test(tc, test_long_line);
    tcase_add_test(tc, test_nonexistent_file);
    tcase_add_test(tc, test_directory_is_io_error);
    tcase_add_test(tc, test_small_err_buffer);
    tcase_add_test(tc, test_find_source);
    tcase_add_test(tc, test_free_is_safe);
    tcase_add_test(tc, test_http_keys);
    tcase_add_loop_test(tc, test_http_bad, 0, sizeof(bad_http) / sizeof(bad_http[0]));
    tcase_add_test(tc, test_tls_needs_both);
    tcase_add_test(tc, test_ui_keys);
    tcase_add_test(tc, test_relay_keys);
    tcase_add_test(tc, test_playback_keys);
    tcase_add_loop_test(tc, test_relay_bad, 0, sizeof(bad_relay) / sizeof(bad_relay[0]));
    tcase_add_test(tc, test_relay_push_password_not_echoed);
    tcase_add_test(tc, test_secrets_found);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
