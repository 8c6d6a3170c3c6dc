/* vigilctl calls import: a Master.csv file read in blocks through the same
 * importer as POST /api/v1/calls/import, audited as calls.import. */
#include "cmd/ctl_calls.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls/calls.h"
#include "cmd/ctl_accounts.h"
#include "core/clock.h"
#include "core/errors.h"

#define BLOCK (256 * 1024)

int ctl_calls_import(const vg_config_t *cfg, idx_t *idx, const char *path, const char *format,
                     int utc)
{
    FILE *f = NULL;
    char *buf = NULL;
    call_import_t *im = NULL;
    call_import_report_t *rep = NULL;
    int ret = 2;
    if (!format || strcmp(format, "asterisk-csv") != 0) {
        fprintf(stderr, "vigilctl: calls import needs --format asterisk-csv\n");
        return 2;
    }
    if (!(f = fopen(path, "re"))) {
        fprintf(stderr, "vigilctl: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    int64_t now = vg_clock_wall(&vg_system_clock);
    if (call_import_begin(idx, cfg, utc, cfg->http.timezone, now, &im) != VG_OK) {
        fprintf(stderr, "vigilctl: cannot read the time zone %s\n",
                cfg->http.timezone ? cfg->http.timezone : "(system)");
        goto cleanup;
    }
    idx_audit_t row;
    ctl_audit_row(&row, "calls.import", "calls", 0, 0, "ok", "");
    call_import_audit(im, &row);
    ret = 1;
    buf = malloc(BLOCK);
    if (!buf)
        abort();
    size_t n;
    while ((n = fread(buf, 1, BLOCK, f)) > 0) {
        if (call_import_feed(im, buf, n) != VG_OK) {
            fprintf(stderr, "vigilctl: the index failed; rows already committed stay (importing "
                            "the file again merges them)\n");
            goto cleanup;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "vigilctl: reading %s failed\n", path);
        goto cleanup;
    }
    rep = calloc(1, sizeof(*rep));
    if (!rep)
        abort();
    int rc = call_import_end(im, rep);
    im = NULL;
    if (rc != VG_OK) {
        fprintf(stderr, "vigilctl: the index failed at the end of the import\n");
        goto cleanup;
    }
    char detail[200];
    snprintf(detail, sizeof(detail),
             "file=%.60s imported=%" PRId64 " merged=%" PRId64 " unmatched=%" PRId64
             " bad=%" PRId64, path, rep->imported, rep->merged, rep->unmatched, rep->bad);
    if (ctl_audit(idx, "calls.import", "calls", 0, 0, "ok", detail) != VG_OK)
        goto cleanup;
    char *text = call_import_report_json(rep);
    printf("%s\n", text);
    free(text);
    ret = 0;

cleanup:
    call_import_abort(im);
    free(rep);
    free(buf);
    if (f)
        fclose(f);
    return ret;
}
