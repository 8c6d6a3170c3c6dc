/* Small helpers every module uses: allocation that aborts on failure (so error
 * paths only deal with I/O, media and bad input), time text in RFC 3339, and
 * file-system steps needed for crash safety. */
#ifndef VG_UTIL_H
#define VG_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

void *vg_malloc(size_t size);
void *vg_calloc(size_t n, size_t size);
void *vg_realloc(void *ptr, size_t size);
char *vg_strdup(const char *s);
char *vg_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Formats UTC microseconds as "2026-11-27T10:00:00.000Z" (millisecond precision).
 * out must hold VG_TIME_TEXT_MAX bytes. */
#define VG_TIME_TEXT_MAX 32
void vg_time_format(int64_t utc_us, char *out);

/* Parses RFC 3339 ("2026-11-27T10:00:00Z", fractional seconds and numeric
 * offsets allowed) or plain unix seconds ("1795000000", optionally fractional).
 * Returns 0 or VG_EINVAL. */
int vg_time_parse(const char *text, int64_t *utc_us);

/* The time us microseconds from now on clock, as pthread_cond_timedwait
 * takes it (the condition variable's clock: CLOCK_REALTIME by default). */
void vg_deadline_us(clockid_t clock, int64_t us, struct timespec *out);

/* Appends item to the comma-separated list in buf (size bytes, NUL-terminated;
 * cut short when full), e.g. the "h264,pcm_alaw" of a segment's codecs. */
void vg_list_append(char *buf, size_t size, const char *item);

/* Creates dir and its parents with mode 0750; existing dirs are fine. */
int vg_mkdir_p(const char *dir);
/* fsync()s a directory so a created, renamed or unlinked entry is durable. */
int vg_fsync_dir(const char *dir);
/* fsync()s the directory holding path. */
int vg_fsync_parent(const char *path);
/* Writes all of buf or returns VG_EIO / VG_ENOSPC (errno kept). */
int vg_write_all(int fd, const void *buf, size_t len);

/* Returns 1 when name matches [a-z0-9][a-z0-9-]{0,62}. */
int vg_source_name_valid(const char *name);

/* ---- UTF-8: text from strangers on its way into JSON ----
 * jansson refuses to build or dump a string that is not valid UTF-8, so every
 * byte a client sent goes through these before it is echoed (DESIGN.md
 * invariant 8). Invalid means: a stray continuation byte, a lead byte with too
 * few continuations (a cut sequence), an overlong form, a surrogate
 * (U+D800..U+DFFF), a code point past U+10FFFF, or 0xC0, 0xC1, 0xF5..0xFF. */

/* U+FFFD, what every invalid byte becomes. */
#define VG_UTF8_REPLACEMENT "\xef\xbf\xbd"

/* 1 when s[0..len) is valid UTF-8 (NUL bytes count as valid). */
int vg_utf8_valid(const char *s, size_t len);
/* Copies the NUL-terminated src into dst (size > 0 bytes, always
 * NUL-terminated) replacing each byte of an invalid sequence with U+FFFD;
 * when dst is too small the copy ends before a whole character, never inside
 * one. Returns the bytes written, NUL excluded. */
size_t vg_utf8_copy(char *dst, size_t size, const char *src);
/* vg_utf8_copy in place, within the size bytes of buf (a fixed-size field). */
void vg_utf8_fix(char *buf, size_t size);
/* A malloc'd valid UTF-8 copy of src (never cut short). */
char *vg_utf8_dup(const char *src);

#endif
