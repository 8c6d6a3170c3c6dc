/* The archive's identity: a marker file in data_dir, written when the archive
 * is first initialised, whose id the index keeps too (and, under systemd, the
 * state directory outside data_dir). A disk that is not mounted shows up as a
 * missing or empty data_dir; without the identity check vigild would start a
 * fresh archive on the root filesystem and the real one would look lost. */
#include "archive/archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define ID_HEX 32 /* 128 random bits */

static int refuse(char *err, size_t size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(char *err, size_t size, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return code;
}

static int valid_id(const char *id)
{
    if (strlen(id) != ID_HEX)
        return 0;
    for (const char *p = id; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    }
    return 1;
}

/* 1 with id filled, 0 when there is no marker, -1 when it cannot be read or
 * holds no valid id (errno set). */
static int read_marker(const char *path, char id[ID_HEX + 1])
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char line[256];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "id ", 3) == 0 && valid_id(line + 3)) {
            memcpy(id, line + 3, ID_HEX); /* valid_id checked the length */
            id[ID_HEX] = '\0';
            found = 1;
        }
    }
    fclose(f);
    if (!found)
        errno = EINVAL;
    return found ? 1 : -1;
}

/* Written whole, synced, renamed into place, directory synced. */
static int write_marker(const char *path, const char *id, const char *data_dir, int64_t now_us)
{
    char *tmp = vg_asprintf("%s.tmp", path);
    char when[VG_TIME_TEXT_MAX];
    vg_time_format(now_us, when);
    char *text = vg_asprintf("vigil-archive 1\nid %s\ndata_dir %s\ncreated %s\n", id, data_dir,
                             when);
    int rc = VG_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd >= 0) {
        size_t len = strlen(text);
        if (write(fd, text, len) == (ssize_t)len && fsync(fd) == 0)
            rc = VG_OK;
        if (close(fd) != 0)
            rc = VG_EIO;
    }
    if (rc == VG_OK && (rename(tmp, path) != 0 || vg_fsync_parent(path) != VG_OK))
        rc = VG_EIO;
    if (rc != VG_OK) {
        vg_err("cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(text);
    free(tmp);
    return rc;
}

/* *exists and *empty. Neither lost+found (a fresh filesystem has it) nor the
 * marker and its temporary file count: a first start cut while writing the
 * marker leaves only those, and is simply done again. */
static int dir_state(const char *dir, int *exists, int *empty)
{
    *exists = 0;
    *empty = 1;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? VG_OK : VG_EIO;
    *exists = 1;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, "lost+found") != 0 &&
            strncmp(e->d_name, ARC_MARKER, strlen(ARC_MARKER)) != 0)
            *empty = 0;
    }
    closedir(d);
    return VG_OK;
}

/* SQLite's side files of an index that never reached the disk itself. */
static const char *const INDEX_LEFTOVERS[] = {"index.db-journal", "index.db-wal", "index.db-shm",
                                              NULL};

static int is_index_leftover(const char *name)
{
    for (size_t i = 0; INDEX_LEFTOVERS[i]; i++) {
        if (strcmp(name, INDEX_LEFTOVERS[i]) == 0)
            return 1;
    }
    return 0;
}

/* 1 when dir holds nothing but the marker (and its temporary file),
 * lost+found and the side files of an index.db that is not there: a first
 * start cut between the marker and a durable index (the journal of the
 * index's creation can reach the disk before the index does; found by the
 * crash harness). The leftovers are removed, so a stale journal is never
 * taken for the new index's. 0 otherwise; -1 on an I/O error. */
static int only_marker_left(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int only = 1, leftovers = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, "lost+found") == 0 ||
            strncmp(e->d_name, ARC_MARKER, strlen(ARC_MARKER)) == 0)
            continue;
        if (is_index_leftover(e->d_name))
            leftovers = 1;
        else
            only = 0;
    }
    closedir(d);
    if (!only || !leftovers)
        return only;
    for (size_t i = 0; INDEX_LEFTOVERS[i]; i++) {
        char *path = vg_asprintf("%s/%s", dir, INDEX_LEFTOVERS[i]);
        int bad = unlink(path) != 0 && errno != ENOENT;
        free(path);
        if (bad)
            return -1;
    }
    return vg_fsync_dir(dir) == VG_OK ? 1 : -1;
}

static int new_id(char id[ID_HEX + 1])
{
    unsigned char raw[ID_HEX / 2];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return VG_EIO;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
    return VG_OK;
}

/* The index's copy: read, or stored when it has none yet. */
static int index_id(const char *db, const char *store, int64_t now_us, char out[ID_HEX + 1])
{
    idx_t *idx = NULL;
    int rc = idx_open(db, 0, &idx);
    if (rc == VG_OK)
        rc = idx_archive_id(idx, out, ID_HEX + 1);
    if (rc == VG_OK && !out[0] && store) {
        rc = idx_archive_id_set(idx, store, now_us);
        memcpy(out, store, ID_HEX + 1); /* an id from new_id or a marker */
    }
    idx_close(idx);
    return rc;
}

int arc_claim_data_dir(const char *data_dir, const char *state_dir, int64_t now_us, char *err,
                       size_t err_size, int *initialised)
{
    char *marker = vg_asprintf("%s/%s", data_dir, ARC_MARKER);
    char *db = vg_asprintf("%s/index.db", data_dir);
    char *outer = state_dir && state_dir[0] ? vg_asprintf("%s/archive-id", state_dir) : NULL;
    char mid[ID_HEX + 1] = "", iid[ID_HEX + 1] = "", oid[ID_HEX + 1] = "";
    int exists = 0, empty = 1, rc = VG_OK;
    struct stat st;
    *initialised = 0;
    err[0] = '\0';

    int m = read_marker(marker, mid);
    int o = outer ? read_marker(outer, oid) : 0;
    if (m < 0 || o < 0) {
        rc = refuse(err, err_size, VG_EIO, "cannot read the archive marker %s: %s",
                    m < 0 ? marker : outer, strerror(errno));
        goto cleanup;
    }
    if (dir_state(data_dir, &exists, &empty) != VG_OK) {
        rc = refuse(err, err_size, VG_EIO, "cannot read data_dir %s: %s", data_dir,
                    strerror(errno));
        goto cleanup;
    }
    int has_index = stat(db, &st) == 0;
    if (!has_index && errno != ENOENT) {
        rc = refuse(err, err_size, VG_EIO, "cannot stat %s: %s", db, strerror(errno));
        goto cleanup;
    }

    if (m == 0 && !has_index && empty) {
        /* Nothing here. A first start initialises it, unless this appliance
         * already had an archive: then its disk is missing. */
        if (o == 1) {
            rc = refuse(err, err_size, VG_ENOTFOUND,
                        "data_dir %s is %s, but archive %s was initialised there (see %s): is"
                        " its disk mounted? Not starting a new archive in its place",
                        data_dir, exists ? "empty" : "missing", oid, outer);
            goto cleanup;
        }
        if ((rc = vg_mkdir_p(data_dir)) != VG_OK) {
            rc = refuse(err, err_size, rc, "cannot create data_dir %s: %s", data_dir,
                        strerror(errno));
            goto cleanup;
        }
        /* The marker first, then the index that refers to it: a power cut
         * between the two leaves a marker alone in data_dir, which the next
         * start completes (below); the other order left an index naming a
         * marker that never reached the disk, and the archive refused to
         * start for good (found by the crash harness). */
        if ((rc = new_id(mid)) != VG_OK ||
            (rc = write_marker(marker, mid, data_dir, now_us)) != VG_OK ||
            (rc = index_id(db, mid, now_us, iid)) != VG_OK) {
            rc = refuse(err, err_size, rc, "cannot initialise the archive in %s", data_dir);
            goto cleanup;
        }
        *initialised = 1;
        vg_notice("initialised a new archive %s in %s", mid, data_dir);
    } else if (m == 0) {
        if (!has_index) {
            rc = refuse(err, err_size, VG_ECONFIG,
                        "data_dir %s is not empty but holds no vigil archive (no %s, no"
                        " index.db); not mixing a new archive into it",
                        data_dir, ARC_MARKER);
            goto cleanup;
        }
        if ((rc = index_id(db, NULL, now_us, iid)) != VG_OK) {
            rc = refuse(err, err_size, rc, "cannot read the index %s", db);
            goto cleanup;
        }
        if (iid[0]) {
            rc = refuse(err, err_size, VG_ECORRUPT,
                        "%s is missing from data_dir %s whose index belongs to archive %s: is"
                        " this the right disk? If it is, restore the marker (a line 'id %s')",
                        ARC_MARKER, data_dir, iid, iid);
            goto cleanup;
        }
        /* An archive from before identity markers: it is adopted below. */
        if ((rc = new_id(mid)) != VG_OK) {
            rc = refuse(err, err_size, rc, "cannot draw an archive id");
            goto cleanup;
        }
    } else {
        if (!has_index && only_marker_left(data_dir) == 1) {
            /* A first start cut between the marker and the index: nothing
             * recorded yet, so the index is created for this marker. */
            if ((rc = index_id(db, mid, now_us, iid)) != VG_OK) {
                rc = refuse(err, err_size, rc, "cannot initialise the archive in %s", data_dir);
                goto cleanup;
            }
            *initialised = 1;
            vg_notice("completed the initialisation of archive %s in %s", mid, data_dir);
        } else if (!has_index) {
            rc = refuse(err, err_size, VG_ENOTFOUND,
                        "index.db of archive %s is missing from data_dir %s; restore it from"
                        " a backup (vigild does not start a new index beside old media)",
                        mid, data_dir);
            goto cleanup;
        }
        if (!*initialised && (rc = index_id(db, NULL, now_us, iid)) != VG_OK) {
            rc = refuse(err, err_size, rc, "cannot read the index %s", db);
            goto cleanup;
        }
        if (iid[0] && strcmp(iid, mid) != 0) {
            rc = refuse(err, err_size, VG_ECORRUPT,
                        "data_dir %s is marked as archive %s but its index.db belongs to archive"
                        " %s; they do not go together",
                        data_dir, mid, iid);
            goto cleanup;
        }
    }
    if (o == 1 && strcmp(oid, mid) != 0) {
        rc = refuse(err, err_size, VG_ECORRUPT,
                    "data_dir %s holds archive %s, but this appliance's archive is %s (see %s):"
                    " another disk? Remove %s to take this one",
                    data_dir, mid, oid, outer, outer);
        goto cleanup;
    }
    if (!*initialised && (m == 0 || !iid[0])) {
        /* Adopting: the marker first, then the index that refers to it (a
         * cut between them leaves a marker and an index with no id, which
         * the next start adopts again). */
        if ((m == 0 && (rc = write_marker(marker, mid, data_dir, now_us)) != VG_OK) ||
            (rc = index_id(db, mid, now_us, iid)) != VG_OK) {
            rc = refuse(err, err_size, rc, "cannot mark the archive in %s", data_dir);
            goto cleanup;
        }
        vg_notice("marked the archive in %s as %s", data_dir, mid);
    }
    if (outer && o == 0 && write_marker(outer, mid, data_dir, now_us) != VG_OK)
        vg_warn("cannot remember archive %s in %s; a missing disk will not be told from a new"
                " one", mid, outer);

cleanup:
    free(outer);
    free(db);
    free(marker);
    return rc;
}
