/* Evidence export bundles: building the zip (media per source, manifest,
 * signature, public key, VERIFY.txt, SHA256SUMS) and checking one. The
 * media step is pb_media_write alone, so the builder behind it can change. */
#include "playback/playback.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <libavcodec/avcodec.h>
#include <nettle/sha2.h>
#include <zip.h>

#include "archive/archive.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#ifndef VG_VERSION /* set by the Makefile from git */
#define VG_VERSION "unknown"
#endif

/* Share of a job's progress spent on media; the rest is writing the zip. */
#define MEDIA_SHARE 0.8

static const char verify_text[] =
    "Проверка пакета доказательств vigil\n"
    "===================================\n"
    "\n"
    "Этот архив создан регистратором vigil. Файл manifest.json перечисляет\n"
    "исходные сегменты записи (их SHA-256 из индекса регистратора) и SHA-256\n"
    "каждого файла пакета; manifest.json.minisig — его подпись ключом Ed25519\n"
    "регистратора (формат minisign), vigil-appliance.pub — открытый ключ.\n"
    "\n"
    "1. Подпись (пакет minisign):\n"
    "     minisign -Vm manifest.json -p vigil-appliance.pub\n"
    "   Сравните номер ключа в vigil-appliance.pub с номером, полученным от\n"
    "   владельца регистратора по другому каналу (vigilctl key show).\n"
    "2. Целостность файлов:\n"
    "     sha256sum -c SHA256SUMS\n"
    "   Суммы в SHA256SUMS совпадают с суммами в подписанном manifest.json.\n"
    "3. Или всё сразу: vigilctl verify-export ПАКЕТ.zip [--pubkey ФАЙЛ]\n"
    "\n"
    "Аудиозаписи звонков (.wav) содержат G.711 (A-law или mu-law) побитно так,\n"
    "как их прислала АТС, без перекодирования: это лучшее доказательство, чем\n"
    "перекодированный PCM. Видео (.mp4, .mov) перепаковано без перекодирования.\n"
    "\n"
    "Verifying a vigil evidence bundle\n"
    "=================================\n"
    "\n"
    "This archive was made by a vigil recorder. manifest.json lists the original\n"
    "recording segments (their SHA-256 from the recorder's index) and the SHA-256\n"
    "of every file in the bundle; manifest.json.minisig is its signature by the\n"
    "recorder's Ed25519 key (minisign format); vigil-appliance.pub is the public key.\n"
    "\n"
    "1. The signature (minisign package):\n"
    "     minisign -Vm manifest.json -p vigil-appliance.pub\n"
    "   Compare the key number in vigil-appliance.pub with the one the recorder's\n"
    "   owner gives you over another channel (vigilctl key show).\n"
    "2. The files:\n"
    "     sha256sum -c SHA256SUMS\n"
    "   The sums in SHA256SUMS are the ones in the signed manifest.json.\n"
    "3. Or all at once: vigilctl verify-export BUNDLE.zip [--pubkey FILE]\n"
    "\n"
    "Call recordings (.wav) hold G.711 (A-law or mu-law) bit for bit as the PBX\n"
    "sent it, not re-encoded: better evidence than re-encoded PCM. Video (.mp4,\n"
    ".mov) is remuxed without re-encoding.\n";

static void sha256_hex(const void *data, size_t len, char hex[65])
{
    struct sha256_ctx sha;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&sha);
    sha256_update(&sha, len, data);
    sha256_digest(&sha, sizeof(digest), digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

static json_t *time_json(int64_t us)
{
    char text[VG_TIME_TEXT_MAX];
    if (!us)
        return json_null();
    vg_time_format(us, text);
    return json_string(text);
}

/* ---- the media step ---- */

static int is_g711(const char *codec)
{
    return strcmp(codec, "pcm_alaw") == 0 || strcmp(codec, "pcm_mulaw") == 0;
}

const char *pb_media_ext(const idx_segment_t *segs, size_t n)
{
    int video = 0, g711 = 0;
    char codecs[sizeof(segs[0].codecs)];
    if (n == 0)
        return "mkv";
    snprintf(codecs, sizeof(codecs), "%s", segs[0].codecs);
    for (char *save = NULL, *c = strtok_r(codecs, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        const AVCodecDescriptor *d = avcodec_descriptor_get_by_name(c);
        video |= d && d->type == AVMEDIA_TYPE_VIDEO;
        g711 |= is_g711(c);
    }
    if (video)
        return g711 ? "mov" : "mp4";
    return g711 ? "wav" : "mka";
}

static int pb_media_write(const char *data_dir, const idx_segment_t *segs, size_t n,
                          int64_t from_us, int64_t to_us, const char *out_path,
                          arc_export_opts_t *opts, char *err, size_t err_size)
{
    return arc_export_ex(data_dir, segs, n, from_us, to_us, out_path, opts, err, err_size);
}

/* ---- building ---- */

typedef struct {
    const pb_bundle_opts_t *o;
    size_t n_items;       /* sources, or pieces */
    size_t source_index;
    int64_t bytes_done;   /* media files finished */
    int64_t source_bytes; /* stored bytes of the current source's segments */
} progress_t;

static void report(progress_t *p, double fraction, int64_t bytes)
{
    if (p->o->progress)
        p->o->progress(p->o->ctx, fraction < 0 ? 0 : fraction > 1 ? 1 : fraction, bytes);
}

static void media_progress(void *ctx, int64_t bytes)
{
    progress_t *p = ctx;
    double per = MEDIA_SHARE / (double)p->n_items;
    /* Within a source the share moves with the bytes written against the
     * stored bytes they come from (a remux keeps nearly all of them). */
    double within = p->source_bytes > 0 ? (double)bytes / (double)p->source_bytes : 0.5;
    report(p, per * (double)p->source_index + per * (within > 1 ? 1 : within),
           p->bytes_done + bytes);
}

static void zip_progress(zip_t *za, double done, void *ctx)
{
    (void)za;
    progress_t *p = ctx;
    /* The zip copies the media already counted in bytes_done. */
    report(p, MEDIA_SHARE + (1 - MEDIA_SHARE) * done, p->bytes_done);
}

static int zip_cancel(zip_t *za, void *ctx)
{
    (void)za;
    const progress_t *p = ctx;
    return p->o->stop && __atomic_load_n(p->o->stop, __ATOMIC_RELAXED);
}

typedef struct {
    char name[80];        /* {source}.{ext} */
    char *tmp;            /* the media file beside the zip */
    int64_t bytes;
    char sha256[65];
} media_t;

static int fail(char *err, size_t size, int rc, const char *fmt, const char *a, const char *b)
{
    snprintf(err, size, fmt, a, b);
    return rc;
}

static int add_buffer(zip_t *za, const char *name, const char *data, size_t len, time_t mtime)
{
    zip_source_t *src = zip_source_buffer(za, data, len, 0);
    if (!src)
        return VG_EIO;
    zip_int64_t i = zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8);
    if (i < 0) {
        zip_source_free(src);
        return VG_EIO;
    }
    zip_file_set_mtime(za, (zip_uint64_t)i, mtime, 0);
    return VG_OK;
}

static int add_media(zip_t *za, const media_t *m, time_t mtime)
{
    zip_source_t *src = zip_source_file(za, m->tmp, 0, -1);
    if (!src)
        return VG_EIO;
    zip_int64_t i = zip_file_add(za, m->name, src, ZIP_FL_ENC_UTF_8);
    if (i < 0) {
        zip_source_free(src);
        return VG_EIO;
    }
    /* Media is compressed already: stored, so it can be read in place. */
    zip_set_file_compression(za, (zip_uint64_t)i, ZIP_CM_STORE, 0);
    zip_file_set_mtime(za, (zip_uint64_t)i, mtime, 0);
    return VG_OK;
}

static json_t *segments_json(const idx_segment_t *segs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{sI so so sI sI sI ss ss}", "id", (json_int_t)segs[i].id, "start",
                           time_json(segs[i].start_us), "end", time_json(segs[i].end_us),
                           "start_us", (json_int_t)segs[i].start_us, "end_us",
                           (json_int_t)segs[i].end_us, "bytes", (json_int_t)segs[i].bytes,
                           "sha256", segs[i].sha256, "codecs", segs[i].codecs));
    return arr;
}

/* One source: its segments, its media file, its manifest entry. */
static int build_source(idx_t *idx, const pb_bundle_opts_t *o, const char *dir, const char *zip_stem,
                        progress_t *p, media_t *m, json_t *sources, char *err, size_t err_size)
{
    const pb_bundle_piece_t *piece = o->use_pieces ? &o->pieces[p->source_index] : NULL;
    const char *name = piece ? piece->source : o->sources[p->source_index];
    const char *stem = piece ? piece->name : name;
    int64_t from_us = piece ? piece->from_us : o->from_us;
    int64_t to_us = piece ? piece->to_us : o->to_us;
    idx_segment_t *segs = NULL;
    size_t n = 0;
    int rc = idx_segments_in_range(idx, name, from_us, to_us, &segs, &n);
    if (rc == VG_ENOTFOUND || (rc == VG_OK && n == 0)) {
        rc = fail(err, err_size, VG_ENOTFOUND, "nothing recorded from %s in that range%s", name,
                  "");
        goto cleanup;
    }
    if (rc != VG_OK) {
        rc = fail(err, err_size, rc, "cannot read the index for %s%s", name, "");
        goto cleanup;
    }
    p->source_bytes = 0;
    for (size_t i = 0; i < n; i++)
        p->source_bytes += segs[i].bytes;
    const char *ext = pb_media_ext(segs, n);
    snprintf(m->name, sizeof(m->name), "%s.%s", stem, ext);
    m->tmp = vg_asprintf("%s/.%s-%s", dir, zip_stem, m->name);
    arc_export_opts_t eo = {.stop = o->stop, .progress = media_progress, .ctx = p};
    char why[256];
    rc = pb_media_write(o->data_dir, segs, n, from_us, to_us, m->tmp, &eo, why, sizeof(why));
    if (rc != VG_OK) {
        rc = fail(err, err_size, rc, "%s: %s", name, why);
        goto cleanup;
    }
    struct stat st;
    if (stat(m->tmp, &st) != 0 || arc_hash_file(m->tmp, m->sha256) != VG_OK) {
        rc = fail(err, err_size, VG_EIO, "cannot read back the media of %s%s", name, "");
        goto cleanup;
    }
    m->bytes = st.st_size;
    p->bytes_done += m->bytes;
    /* The manifest names only the segments the file was made from; where
     * the source's streams changed inside the range, it says the file ends
     * there (the rest can be exported as a bundle of its own). */
    json_t *cut = NULL;
    if (eo.cut_us)
        cut = json_pack("{so ss}", "at", time_json(eo.cut_us), "reason",
                        "the source's streams changed; the file ends here");
    json_array_append_new(
        sources,
        json_pack("{ss ss s{soso} s{soso} so* so s{ss sI ss}}", "name", name, "kind",
                  strcmp(ext, "wav") == 0 || strcmp(ext, "mka") == 0 ? "audio" : "video",
                  "requested", "from", time_json(from_us), "to", time_json(to_us),
                  "actual", "from", time_json(eo.first_us), "to", time_json(eo.last_us),
                  "cut", cut, "segments", segments_json(segs, eo.segs_used), "file", "name",
                  m->name, "bytes", (json_int_t)m->bytes, "sha256", m->sha256));

cleanup:
    free(segs);
    return rc;
}

static char *manifest_text(const pb_bundle_opts_t *o, json_t *sources, const char *verify_sha,
                           char (*file_sha)[65])
{
    char key_id[VG_KEY_ID_HEX];
    vg_key_id_hex(o->key, key_id);
    json_t *files = json_pack("[{ss sI ss}]", "name", PB_VERIFY_TXT, "bytes",
                              (json_int_t)strlen(verify_text), "sha256", verify_sha);
    for (size_t i = 0; files && i < o->n_files; i++)
        json_array_append_new(files, json_pack("{ss sI ss}", "name", o->files[i].name, "bytes",
                                               (json_int_t)o->files[i].len, "sha256",
                                               file_sha[i]));
    json_t *m = json_pack(
        "{ss ss ss ss ss ss so* so s{soso} so so ss}", "format", PB_BUNDLE_FORMAT,
        "appliance_id", o->appliance_id ? o->appliance_id : "", "vigil_version", VG_VERSION,
        "exporter", o->exporter, "case", o->case_no, "reason", o->reason, "export_id",
        o->export_id ? json_integer(o->export_id) : NULL, "created", time_json(o->created_us),
        "range", "from", time_json(o->from_us), "to", time_json(o->to_us), "sources", sources,
        "files", files, "key_id", key_id);
    if (!m)
        return NULL;
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(m);
    if (!text)
        return NULL;
    char *with_nl = vg_asprintf("%s\n", text);
    free(text);
    return with_nl;
}

static int finish_file(const char *tmp, const char *out_path, char *err, size_t err_size)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = fd >= 0 && fsync(fd) == 0 ? VG_OK : VG_EIO;
    if (fd >= 0)
        close(fd);
    if (rc == VG_OK && rename(tmp, out_path) != 0)
        rc = VG_EIO;
    if (rc == VG_OK && vg_fsync_parent(out_path) != VG_OK)
        rc = VG_EIO;
    if (rc != VG_OK)
        snprintf(err, err_size, "cannot make %s durable: %s", out_path, strerror(errno));
    return rc;
}

int pb_bundle_write(idx_t *idx, const pb_bundle_opts_t *o, const char *out_path,
                    pb_bundle_result_t *res, char *err, size_t err_size)
{
    size_t n_items = o->use_pieces ? o->n_pieces : o->n_sources;
    media_t *media = vg_calloc(n_items ? n_items : 1, sizeof(*media));
    char (*file_sha)[65] = vg_calloc(o->n_files ? o->n_files : 1, sizeof(*file_sha));
    size_t n_media = 0;
    json_t *sources = json_array();
    char *manifest = NULL, *sig = NULL, *sums = NULL, *dir = NULL, *tmp = NULL;
    char pub[VG_KEY_PUB_TEXT_MAX], verify_sha[65], manifest_sha[65], trusted[192];
    zip_t *za = NULL;
    int rc = VG_OK, zerr = 0;
    progress_t p = {.o = o, .n_items = n_items ? n_items : 1};
    memset(res, 0, sizeof(*res));
    err[0] = '\0';
    if (!o->use_pieces && (o->n_sources == 0 || o->n_sources > PB_BUNDLE_MAX_SOURCES)) {
        rc = fail(err, err_size, VG_EINVAL, "from 1 to 16 sources%s%s", "", "");
        goto cleanup;
    }
    if (o->use_pieces && o->n_pieces > PB_BUNDLE_MAX_PIECES) {
        rc = fail(err, err_size, VG_EINVAL, "more than 400 pieces%s%s", "", "");
        goto cleanup;
    }
    const char *slash = strrchr(out_path, '/');
    const char *base = slash ? slash + 1 : out_path;
    dir = slash ? vg_asprintf("%.*s", (int)(slash - out_path), out_path) : vg_strdup(".");
    if (!*dir) {
        free(dir);
        dir = vg_strdup("/");
    }
    /* Everything temporary starts with '.', beside the zip: the exporter
     * removes such leftovers at start. */
    for (size_t i = 0; i < n_items && rc == VG_OK; i++) {
        p.source_index = i;
        report(&p, MEDIA_SHARE * (double)i / (double)n_items, p.bytes_done);
        rc = build_source(idx, o, dir, base, &p, &media[i], sources, err, err_size);
        n_media = i + 1;
    }
    if (rc != VG_OK)
        goto cleanup;

    sha256_hex(verify_text, strlen(verify_text), verify_sha);
    for (size_t i = 0; i < o->n_files; i++)
        sha256_hex(o->files[i].data, o->files[i].len, file_sha[i]);
    manifest = manifest_text(o, sources, verify_sha, file_sha);
    sources = NULL; /* taken by the manifest */
    if (!manifest) {
        rc = fail(err, err_size, VG_EINVAL, "cannot encode the manifest%s%s", "", "");
        goto cleanup;
    }
    snprintf(trusted, sizeof(trusted), "timestamp:%" PRId64 "\tfile:" PB_MANIFEST
             "\texport:%" PRId64 "\tappliance:%.64s",
             o->created_us / 1000000, o->export_id, o->appliance_id ? o->appliance_id : "");
    sig = pb_minisign_sign(o->key, manifest, strlen(manifest),
                           "signature from vigil appliance key", trusted);
    if (!sig) {
        rc = fail(err, err_size, VG_EINVAL, "cannot sign the manifest (no appliance key)%s%s",
                  "", "");
        goto cleanup;
    }
    vg_key_public_text(o->key, pub, sizeof(pub));
    sha256_hex(manifest, strlen(manifest), manifest_sha);
    {
        size_t cap = (n_media + o->n_files + 2) * 160, len = 0;
        sums = vg_malloc(cap);
        sums[0] = '\0';
        for (size_t i = 0; i < n_media; i++)
            len += (size_t)snprintf(sums + len, cap - len, "%s  %s\n", media[i].sha256,
                                    media[i].name);
        len += (size_t)snprintf(sums + len, cap - len, "%s  " PB_MANIFEST "\n", manifest_sha);
        len += (size_t)snprintf(sums + len, cap - len, "%s  " PB_VERIFY_TXT "\n", verify_sha);
        for (size_t i = 0; i < o->n_files; i++)
            len += (size_t)snprintf(sums + len, cap - len, "%s  %s\n", file_sha[i],
                                    o->files[i].name);
    }

    tmp = vg_asprintf("%s/.%s.part", dir, base);
    unlink(tmp);
    if (!(za = zip_open(tmp, ZIP_CREATE | ZIP_EXCL, &zerr))) {
        rc = fail(err, err_size, VG_EIO, "cannot create %s%s", tmp, "");
        goto cleanup;
    }
    time_t mtime = (time_t)(o->created_us / 1000000);
    for (size_t i = 0; i < n_media && rc == VG_OK; i++)
        rc = add_media(za, &media[i], mtime);
    if (rc == VG_OK)
        rc = add_buffer(za, PB_MANIFEST, manifest, strlen(manifest), mtime);
    if (rc == VG_OK)
        rc = add_buffer(za, PB_MANIFEST_SIG, sig, strlen(sig), mtime);
    if (rc == VG_OK)
        rc = add_buffer(za, PB_PUBKEY, pub, strlen(pub), mtime);
    if (rc == VG_OK)
        rc = add_buffer(za, PB_VERIFY_TXT, verify_text, strlen(verify_text), mtime);
    if (rc == VG_OK)
        rc = add_buffer(za, PB_SHA256SUMS, sums, strlen(sums), mtime);
    for (size_t i = 0; i < o->n_files && rc == VG_OK; i++)
        rc = add_buffer(za, o->files[i].name, o->files[i].data, o->files[i].len, mtime);
    if (rc != VG_OK) {
        fail(err, err_size, rc, "cannot add files to the zip%s%s", "", "");
        goto cleanup;
    }
    zip_register_progress_callback_with_state(za, 0.01, zip_progress, NULL, &p);
    zip_register_cancel_callback_with_state(za, zip_cancel, NULL, &p);
    if (zip_close(za) != 0) {
        int stopped = zip_cancel(za, &p);
        rc = stopped ? VG_ESTOPPED : VG_EIO;
        if (stopped)
            snprintf(err, err_size, "interrupted");
        else
            snprintf(err, err_size, "cannot write the zip: %s", zip_strerror(za));
        goto cleanup; /* za is discarded below */
    }
    za = NULL;
    if ((rc = finish_file(tmp, out_path, err, err_size)) != VG_OK)
        goto cleanup;
    struct stat st;
    if (stat(out_path, &st) != 0 || arc_hash_file(out_path, res->sha256) != VG_OK) {
        rc = fail(err, err_size, VG_EIO, "cannot read back %s%s", out_path, "");
        goto cleanup;
    }
    res->bytes = st.st_size;
    report(&p, 1.0, res->bytes);

cleanup:
    if (za)
        zip_discard(za);
    if (rc != VG_OK && tmp)
        unlink(tmp);
    for (size_t i = 0; i < n_media; i++) {
        if (media[i].tmp)
            unlink(media[i].tmp);
        free(media[i].tmp);
    }
    json_decref(sources);
    free(media);
    free(file_sha);
    free(manifest);
    free(sig);
    free(sums);
    free(tmp);
    free(dir);
    return rc;
}
