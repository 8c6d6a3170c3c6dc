/* placeholder, replaced below */
#include "live/live_private.h"
#include "core/errors.h"
#include <stdio.h>
#include <string.h>
void live_mse_packet(live_session_t *s, const AVPacket *pkt, int slot, int key) { (void)s; (void)pkt; (void)slot; (void)key; }
void live_mse_free(live_mse_t *m) { (void)m; }
void live_mse_pump(live_t *l) { (void)l; }
void live_mse_finish(live_session_t *s) { (void)s; }
int live_stream_open(live_t *l, const live_stream_request_t *req, live_stream_t **out,
                     char *codecs, size_t codecs_size, live_whep_result_t *res)
{
    (void)l; (void)codecs; (void)codecs_size;
    *out = NULL;
    memset(res, 0, sizeof(*res));
    res->status = 503;
    snprintf(res->code, sizeof(res->code), "live_unavailable");
    snprintf(res->message, sizeof(res->message), "not yet");
    if (req->hooks.release)
        req->hooks.release(req->hooks.ctx);
    return VG_EBUSY;
}
long live_stream_read(live_stream_t *s, char *buf, size_t max) { (void)s; (void)buf; (void)max; return -1; }
void live_stream_close(live_stream_t *s) { (void)s; }
const char *live_stream_id(const live_stream_t *s) { (void)s; return ""; }
