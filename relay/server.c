/* The relay's RTSP server: gst-rtsp-server on its own GMainContext in a
 * thread of its own ("relay", signals blocked), the mounts (one per feed),
 * who may connect (connection limits in total and per address), who may
 * watch what (RlyAuth over creds.c: 401 otherwise), and the audit rows of
 * every relay session (start before PLAY is answered, end with duration). */
#include "relay/relay_private.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "core/errors.h"
#include "core/util.h"

/* Client connections are served by this many threads at most: enough that
 * one client's slow step (Argon2id at its first request) does not hold up
 * the others, few enough that a flood cannot spawn hundreds. */
#define CLIENT_THREADS 16
#define SESSION_CLEANUP_S 2
/* Relay sessions (session media played) one connection may have at once. */
#define MAX_PLAYS 4
#define REFUSED_LOG_EVERY_US (10 * 1000000LL)
/* How often the accounts generation is read: a revoked credential's
 * sessions end within this plus the time to close them (README: 10 s). */
#define REVOKE_POLL_MS 2000

struct rly_peer {
    char ip[64];
    int n;
};

/* ---- the mounts ---- */

static void mount_path(const rly_feed_t *f, char *out, size_t size)
{
    snprintf(out, size, "/%s", f->name);
}

void rly_server_mount(rly_server_t *s, rly_feed_t *f)
{
    char path[80];
    mount_path(f, path, sizeof(path));
    rly_feed_ref(f);
    pthread_mutex_lock(&s->lock);
    size_t i = 0;
    while (i < s->n_feeds && strcmp(s->feeds[i]->name, f->name) != 0)
        i++;
    if (i < s->n_feeds) {
        rly_feed_unref(s->feeds[i]); /* a restarted source takes its path over */
    } else {
        s->feeds = vg_realloc(s->feeds, (s->n_feeds + 1) * sizeof(*s->feeds));
        s->n_feeds++;
    }
    s->feeds[i] = f;
    gst_rtsp_mount_points_add_factory(s->mounts, path, g_object_ref(f->factory));
    pthread_mutex_unlock(&s->lock);
}

void rly_server_unmount(rly_server_t *s, rly_feed_t *f)
{
    char path[80];
    mount_path(f, path, sizeof(path));
    int mine = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_feeds && !mine; i++) {
        if (s->feeds[i] == f) {
            s->feeds[i] = s->feeds[--s->n_feeds];
            gst_rtsp_mount_points_remove_factory(s->mounts, path);
            mine = 1;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (mine)
        rly_feed_unref(f);
}

rly_feed_t *rly_server_find_feed(rly_server_t *s, const char *name)
{
    rly_feed_t *f = NULL;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_feeds && !f; i++) {
        if (strcmp(s->feeds[i]->name, name) == 0) {
            f = s->feeds[i];
            rly_feed_ref(f);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return f;
}

/* ---- closing sessions (relay thread) ---- */

typedef struct {
    rly_server_t *s;
    GPtrArray *medias;  /* NULL: every session */
    GPtrArray *release; /* medias whose hold goes once their sessions are closed */
    gboolean hit;
} close_job_t;

static GstRTSPFilterResult drop_media(GstRTSPSession *sess, GstRTSPSessionMedia *sm, gpointer data)
{
    (void)sess;
    close_job_t *job = data;
    GstRTSPMedia *m = gst_rtsp_session_media_get_media(sm);
    for (guint i = 0; job->medias && i < job->medias->len; i++) {
        if (g_ptr_array_index(job->medias, i) == m) {
            job->hit = TRUE;
            return GST_RTSP_FILTER_REMOVE;
        }
    }
    if (!job->medias)
        job->hit = TRUE;
    return job->medias ? GST_RTSP_FILTER_KEEP : GST_RTSP_FILTER_REMOVE;
}

static GstRTSPFilterResult scan_session(GstRTSPClient *c, GstRTSPSession *sess, gpointer data)
{
    (void)c;
    g_list_free(gst_rtsp_session_filter(sess, drop_media, data));
    return GST_RTSP_FILTER_KEEP;
}

/* REMOVE closes the connection: a TCP client sees the end at once. */
static GstRTSPFilterResult close_client(GstRTSPServer *server, GstRTSPClient *c, gpointer data)
{
    (void)server;
    close_job_t *job = data;
    job->hit = FALSE;
    g_list_free(gst_rtsp_client_session_filter(c, scan_session, job));
    return job->hit || !job->medias ? GST_RTSP_FILTER_REMOVE : GST_RTSP_FILTER_KEEP;
}

/* Sessions outlive their connection (UDP clients): drop them from the pool too. */
static GstRTSPFilterResult pool_drop(GstRTSPSessionPool *pool, GstRTSPSession *sess, gpointer data)
{
    (void)pool;
    g_list_free(gst_rtsp_session_filter(sess, drop_media, data));
    return GST_RTSP_FILTER_KEEP;
}

static void close_sessions(close_job_t *job)
{
    GstRTSPServer *server = job->s->server;
    g_list_free(gst_rtsp_server_client_filter(server, close_client, job));
    GstRTSPSessionPool *pool = gst_rtsp_server_get_session_pool(server);
    g_list_free(gst_rtsp_session_pool_filter(pool, pool_drop, job));
    g_object_unref(pool);
}

/* Drops the taps' holds (tap.c, on_media_prepared): a media nobody else
 * uses is torn down here, on the relay thread. */
static void release_holds(GPtrArray *medias)
{
    for (guint i = 0; medias && i < medias->len; i++)
        gst_rtsp_media_unprepare(g_ptr_array_index(medias, i));
}

static gboolean close_job_run(gpointer data)
{
    close_job_t *job = data;
    close_sessions(job);
    release_holds(job->release);
    return G_SOURCE_REMOVE;
}

static void close_job_free(gpointer data)
{
    close_job_t *job = data;
    if (job->medias)
        g_ptr_array_unref(job->medias);
    if (job->release)
        g_ptr_array_unref(job->release);
    g_free(job);
}

void rly_server_close_medias(rly_server_t *s, GPtrArray *medias, GPtrArray *release)
{
    if (!s->rtsp || (medias->len == 0 && release->len == 0)) {
        g_ptr_array_unref(medias);
        g_ptr_array_unref(release);
        return;
    }
    close_job_t *job = g_new0(close_job_t, 1);
    job->s = s;
    job->medias = medias;
    job->release = release;
    g_main_context_invoke_full(s->ctx, G_PRIORITY_DEFAULT, close_job_run, job, close_job_free);
}

/* Media of every feed whose hold is due (all: every one). Relay thread. */
static void release_idle(rly_server_t *s, int all)
{
    GPtrArray *release = g_ptr_array_new_with_free_func(g_object_unref);
    int64_t now = vg_clock_mono(s->clock);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_feeds; i++)
        rly_taps_release_idle(s->feeds[i], now, all, release);
    pthread_mutex_unlock(&s->lock);
    release_holds(release);
    g_ptr_array_unref(release);
}

/* ---- clients: limits and audit ---- */

/* One played session media: a connection may have several sessions, even
 * of one source, and each is a relay session of its own (its relay.play and
 * relay.stop rows, its place in the re-check). */
typedef struct {
    size_t id;        /* its session media's play_quark */
    char source[64];
    int64_t start_us;
    rly_feed_t *feed; /* counts this session in its `watching` */
} play_t;

typedef struct {
    rly_server_t *s;
    char ip[64];
    int strip_rtp_info; /* the PLAY being answered has TCP streams */
    /* The client's own thread changes these; the relay thread reads them
     * when it re-checks live sessions after a change of accounts. */
    GSocket *sock;   /* the connection's socket (a reference), closed on "closed" */
    GMutex mu;
    char actor[96];  /* the last principal that passed the checks */
    rly_principal_t who; /* that principal, when have_who */
    int have_who;
    const char *end_reason; /* NULL, or "revoked": why the relay closed it */
    play_t plays[MAX_PLAYS];
    size_t n_plays;
} client_state_t;

static GQuark client_quark;
/* On a GstRTSPSessionMedia that was played: the id of its play_t. An id
 * rather than the pointer: a session media freed without a TEARDOWN (its
 * session timed out) may leave its address to the next one. */
static GQuark play_quark;
static atomic_size_t play_ids;

static void client_state_free(gpointer data)
{
    client_state_t *cs = data;
    g_mutex_clear(&cs->mu);
    if (cs->sock)
        g_object_unref(cs->sock);
    sodium_memzero(&cs->who, sizeof(cs->who));
    g_free(cs);
}

static client_state_t *state_of(GstRTSPClient *client)
{
    return client ? g_object_get_qdata(G_OBJECT(client), client_quark) : NULL;
}

static const char *conn_ip(GstRTSPConnection *conn)
{
    const char *ip = conn ? gst_rtsp_connection_get_ip(conn) : NULL;
    return ip ? ip : "unknown";
}

/* Whether rest (what follows /<name> in a request's path) is one of the
 * paths gst-rtsp-server itself hands out for a mount: nothing (the mount;
 * the aggregate control "/<name>/" arrives without its trailing slash, which
 * the server strips) or "/stream=N" (a stream's control). SETUP matches
 * /<name>/<anything> to the source's factory: every other path is refused
 * here, so that no client-chosen path reaches it. */
static int served_suffix(const char *rest)
{
    if (rest[0] == '\0')
        return 1;
    if (strncmp(rest, "/stream=", 8) != 0)
        return 0;
    size_t digits = strspn(rest + 8, "0123456789");
    return digits > 0 && digits <= 3 && rest[8 + digits] == '\0';
}

/* The source a request is about: /<name>, or a control path under it
 * (served_suffix); 0 for any other path. */
static int source_of(const GstRTSPUrl *uri, char *out, size_t size)
{
    if (!uri || !uri->abspath || uri->abspath[0] != '/')
        return 0;
    const char *name = uri->abspath + 1;
    size_t n = strcspn(name, "/");
    if (n == 0 || n >= size || !served_suffix(name + n))
        return 0;
    memcpy(out, name, n);
    out[n] = '\0';
    return vg_source_name_valid(out);
}

static struct rly_peer *peer_find(rly_server_t *s, const char *ip)
{
    for (size_t i = 0; i < s->n_peers; i++) {
        if (strcmp(s->peers[i].ip, ip) == 0)
            return &s->peers[i];
    }
    return NULL;
}

static void peer_add(rly_server_t *s, const char *ip, int delta)
{
    pthread_mutex_lock(&s->lock);
    struct rly_peer *p = peer_find(s, ip);
    if (!p && delta > 0) {
        s->peers = vg_realloc(s->peers, (s->n_peers + 1) * sizeof(*s->peers));
        p = &s->peers[s->n_peers++];
        snprintf(p->ip, sizeof(p->ip), "%s", ip);
        p->n = 0;
    }
    if (p) {
        p->n += delta;
        s->n_clients += delta;
        if (p->n <= 0)
            *p = s->peers[--s->n_peers];
    }
    pthread_mutex_unlock(&s->lock);
}

/* cs->mu held. */
static void audit_play_end(client_state_t *cs, const play_t *p)
{
    int64_t now = vg_clock_wall(cs->s->clock);
    char detail[64];
    snprintf(detail, sizeof(detail), "duration_s=%.1f%s%s", (double)(now - p->start_us) / 1e6,
             cs->end_reason ? " reason=" : "", cs->end_reason ? cs->end_reason : "");
    rly_audit_t a = {.actor = cs->actor, .ip = cs->ip, .action = "relay.stop",
                     .source = p->source, .result = "ok", .detail = detail,
                     .from_us = p->start_us, .to_us = now};
    rly_creds_audit(cs->s->creds, &a);
    vg_info("relay: session ended source=%s after %.1f s%s%s", p->source,
            (double)(now - p->start_us) / 1e6, cs->end_reason ? ": " : "",
            cs->end_reason ? cs->end_reason : "");
    if (p->feed) {
        atomic_fetch_sub(&p->feed->watching, 1);
        rly_feed_unref(p->feed);
    }
}

static int has_tcp_stream(GstRTSPSessionMedia *sm)
{
    GstRTSPMedia *m = sm ? gst_rtsp_session_media_get_media(sm) : NULL;
    guint n = m ? gst_rtsp_media_n_streams(m) : 0;
    for (guint i = 0; i < n; i++) {
        GstRTSPStreamTransport *tr = gst_rtsp_session_media_get_transport(sm, i);
        const GstRTSPTransport *t = tr ? gst_rtsp_stream_transport_get_transport(tr) : NULL;
        if (t && t->lower_transport == GST_RTSP_LOWER_TRANS_TCP)
            return 1;
    }
    return 0;
}

static size_t play_id_of(GstRTSPSessionMedia *sm)
{
    return sm ? GPOINTER_TO_SIZE(g_object_get_qdata(G_OBJECT(sm), play_quark)) : 0;
}

/* The entry of the session media with this id, or NULL. cs->mu held. */
static play_t *play_find(client_state_t *cs, size_t id)
{
    for (size_t i = 0; id && i < cs->n_plays; i++) {
        if (cs->plays[i].id == id)
            return &cs->plays[i];
    }
    return NULL;
}

/* Invariant 6: the start is on record before PLAY is answered; a session
 * whose start cannot be recorded does not start. */
static GstRTSPStatusCode on_pre_play(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
    (void)data;
    client_state_t *cs = state_of(client);
    char source[64];
    if (!cs || !ctx->sessmedia || !source_of(ctx->uri, source, sizeof(source)))
        return GST_RTSP_STS_OK;
    cs->strip_rtp_info = has_tcp_stream(ctx->sessmedia);
    GstRTSPStatusCode code = GST_RTSP_STS_OK;
    g_mutex_lock(&cs->mu);
    if (play_find(cs, play_id_of(ctx->sessmedia)))
        goto done; /* PLAY after PAUSE: the same session */
    if (cs->n_plays == MAX_PLAYS) {
        code = GST_RTSP_STS_NOT_ENOUGH_BANDWIDTH;
        goto done;
    }
    /* Checked before a revocation the relay has since learnt of (the
     * re-check of live sessions skipped it: it played nothing then). */
    if (cs->have_who && !rly_creds_current(cs->s->creds, &cs->who)) {
        rly_principal_t now;
        rly_feed_t *f = rly_server_find_feed(cs->s, source);
        int rc = rly_creds_recheck(cs->s->creds, &cs->who, &now);
        int ok = rc == VG_OK && f && rly_may_watch(&now, source, f->kind);
        rly_feed_unref(f);
        if (ok)
            cs->who = now;
        sodium_memzero(&now, sizeof(now));
        if (!ok) {
            code = rc == VG_OK || rc == VG_ENOTFOUND ? GST_RTSP_STS_NOT_FOUND
                                                     : GST_RTSP_STS_SERVICE_UNAVAILABLE;
            goto done;
        }
    }
    int64_t now = vg_clock_wall(cs->s->clock);
    rly_audit_t a = {.actor = cs->actor, .ip = cs->ip, .action = "relay.play", .source = source,
                     .result = "ok", .detail = "", .from_us = now};
    if (rly_creds_audit(cs->s->creds, &a) != VG_OK) {
        code = GST_RTSP_STS_SERVICE_UNAVAILABLE;
        goto done;
    }
    play_t *p = &cs->plays[cs->n_plays++];
    p->id = atomic_fetch_add(&play_ids, 1) + 1;
    g_object_set_qdata(G_OBJECT(ctx->sessmedia), play_quark, GSIZE_TO_POINTER(p->id));
    snprintf(p->source, sizeof(p->source), "%s", source);
    p->start_us = now;
    p->feed = rly_server_find_feed(cs->s, source);
    if (p->feed)
        atomic_fetch_add(&p->feed->watching, 1);
    vg_info("relay: session started source=%s", source);
done:
    g_mutex_unlock(&cs->mu);
    return code;
}

static void on_teardown(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
    (void)data;
    client_state_t *cs = state_of(client);
    rly_tap_leave(ctx->sessmedia);
    if (!cs)
        return;
    /* Only the session torn down ends: the connection's other sessions,
     * of this source too, go on. */
    g_mutex_lock(&cs->mu);
    play_t *p = play_find(cs, play_id_of(ctx->sessmedia));
    if (p) {
        audit_play_end(cs, p);
        *p = cs->plays[--cs->n_plays];
    }
    g_mutex_unlock(&cs->mu);
}

static void on_setup(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
    (void)client;
    (void)data;
    if (ctx->trans)
        rly_tap_transport_chosen(ctx->media, ctx->stream,
                                 gst_rtsp_stream_transport_get_transport(ctx->trans));
}

/* The PLAY answer is on its way: now the TCP streams may follow it. */
static void on_play(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
    (void)data;
    rly_tap_join(client, ctx->sessmedia);
}

static void on_pause(GstRTSPClient *client, GstRTSPContext *ctx, gpointer data)
{
    (void)client;
    (void)data;
    rly_tap_leave(ctx->sessmedia);
}

/* RTP-Info names the sequence number and timestamp of the RTSP stream's own
 * packets; a TCP client gets the fan-out's (tap.c), which start with the
 * cached GOP. Without the header clients take the first packet as the
 * start, which is what it is. */
static void on_send_message(GstRTSPClient *client, gpointer ctx, gpointer message, gpointer data)
{
    (void)ctx;
    (void)data;
    client_state_t *cs = state_of(client);
    GstRTSPMessage *msg = message;
    if (!cs || !cs->strip_rtp_info || !msg ||
        gst_rtsp_message_get_type(msg) != GST_RTSP_MESSAGE_RESPONSE)
        return;
    gchar *value = NULL;
    if (gst_rtsp_message_get_header(msg, GST_RTSP_HDR_RTP_INFO, &value, 0) == GST_RTSP_OK) {
        gst_rtsp_message_remove_header(msg, GST_RTSP_HDR_RTP_INFO, -1);
        cs->strip_rtp_info = 0;
    }
}

static void leave_all_feeds(rly_server_t *s, const GstRTSPClient *client)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_feeds; i++)
        rly_taps_leave_client(s->feeds[i], client);
    pthread_mutex_unlock(&s->lock);
}

static void on_closed(GstRTSPClient *client, gpointer data)
{
    (void)data;
    client_state_t *cs = state_of(client);
    if (!cs)
        return;
    g_mutex_lock(&cs->mu);
    for (size_t i = 0; i < cs->n_plays; i++)
        audit_play_end(cs, &cs->plays[i]);
    cs->n_plays = 0;
    g_mutex_unlock(&cs->mu);
    leave_all_feeds(cs->s, client);
    /* After a failed TLS handshake (e.g. a TLS 1.1 client) the TLS stream
     * is never closed and the socket would stay open for good, one file
     * descriptor per attempt: a peer could run vigild out of them. Closing
     * a socket already closed is harmless. Not so a tunnel's (RTSP over
     * HTTP): its POST connection closes once its socket has been handed to
     * the GET connection's client, which reads the tunnel from it; a
     * tunnel's sockets are closed by gst-rtsp-server itself. */
    GstRTSPConnection *conn = gst_rtsp_client_get_connection(client);
    if (cs->sock && !(conn && gst_rtsp_connection_get_tunnelid(conn)))
        g_socket_close(cs->sock, NULL);
    peer_add(cs->s, cs->ip, -1);
    /* The state lives on until the client object goes; "closed" comes once. */
    cs->ip[0] = '\0';
}

static void on_client_connected(GstRTSPServer *server, GstRTSPClient *client, gpointer data)
{
    (void)server;
    rly_server_t *s = data;
    client_state_t *cs = g_new0(client_state_t, 1);
    cs->s = s;
    g_mutex_init(&cs->mu);
    GstRTSPConnection *conn = gst_rtsp_client_get_connection(client);
    snprintf(cs->ip, sizeof(cs->ip), "%s", conn_ip(conn));
    GSocket *sock = conn ? gst_rtsp_connection_get_read_socket(conn) : NULL;
    cs->sock = sock ? g_object_ref(sock) : NULL;
    snprintf(cs->actor, sizeof(cs->actor), "anonymous");
    peer_add(s, cs->ip, +1);
    g_object_set_qdata_full(G_OBJECT(client), client_quark, cs, client_state_free);
    g_signal_connect(client, "closed", G_CALLBACK(on_closed), NULL);
    g_signal_connect(client, "pre-play-request", G_CALLBACK(on_pre_play), NULL);
    g_signal_connect(client, "teardown-request", G_CALLBACK(on_teardown), NULL);
    g_signal_connect(client, "setup-request", G_CALLBACK(on_setup), NULL);
    g_signal_connect(client, "play-request", G_CALLBACK(on_play), NULL);
    g_signal_connect(client, "pause-request", G_CALLBACK(on_pause), NULL);
    g_signal_connect(client, "send-message", G_CALLBACK(on_send_message), NULL);
}

/* ---- RlyAuth: who may connect, who may watch what ---- */

typedef struct {
    GstRTSPAuth parent;
    rly_server_t *srv;
} RlyAuth;

typedef struct {
    GstRTSPAuthClass parent_class;
} RlyAuthClass;

static GstRTSPAuthClass *auth_parent_class;

static void reply(GstRTSPContext *ctx, GstRTSPStatusCode code)
{
    gst_rtsp_message_init_response(ctx->response, code, gst_rtsp_status_as_text(code), ctx->request);
    if (code == GST_RTSP_STS_UNAUTHORIZED)
        gst_rtsp_message_add_header(ctx->response, GST_RTSP_HDR_WWW_AUTHENTICATE,
                                    "Basic realm=\"vigil\"");
    gst_rtsp_client_send_message(ctx->client, ctx->session, ctx->response);
}

static gboolean check_connect(RlyAuth *auth, GstRTSPContext *ctx, const gchar *check)
{
    static int64_t last_log_us;
    rly_server_t *s = auth->srv;
    const char *ip = conn_ip(ctx->conn);
    pthread_mutex_lock(&s->lock);
    const struct rly_peer *p = peer_find(s, ip);
    int full = s->n_clients >= s->cfg->relay.max_clients ||
               (p && p->n >= s->cfg->relay.max_clients_per_ip);
    pthread_mutex_unlock(&s->lock);
    if (full) {
        int64_t now = vg_clock_mono(s->clock);
        if (now - last_log_us >= REFUSED_LOG_EVERY_US) {
            vg_warn("relay: connection limit reached (max_clients %d, per address %d): "
                    "refusing connections", s->cfg->relay.max_clients,
                    s->cfg->relay.max_clients_per_ip);
            last_log_us = now;
        }
        return FALSE;
    }
    /* The parent puts the TLS certificate on the connection (RTSPS). */
    return auth_parent_class->check(GST_RTSP_AUTH(auth), ctx, check);
}

/* Credentials in clear text cross only the loopback interface, unless
 * [relay] allow_plain_credentials says the network is trusted. */
static int plain_credentials_allowed(const rly_server_t *s, const char *ip)
{
    if (s->tls || s->cfg->relay.allow_plain_credentials)
        return 1;
    /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d. */
    if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.'))
        ip += 7;
    GInetAddress *a = g_inet_address_new_from_string(ip);
    int loopback = a && g_inet_address_get_is_loopback(a);
    if (a)
        g_object_unref(a);
    return loopback;
}

static void audit_denied(rly_server_t *s, const char *ip, const char *actor, const char *source,
                         const char *why)
{
    rly_creds_denied(s->creds, ip, actor, source, why);
}

/* Every request but OPTIONS carries credentials for the source it names.
 * To a caller with valid credentials, a source it may not watch does not
 * exist (README): the same 404 as for an unknown name, after the same work
 * (feed lookup, permission check, denial audit row), so neither the answer
 * nor its timing tells the two apart. */
static gboolean check_url(rly_server_t *s, GstRTSPContext *ctx)
{
    client_state_t *cs = state_of(ctx->client);
    const char *ip = cs ? cs->ip : "unknown";
    char source[64];
    gchar *authorization = NULL;
    rly_principal_t who;
    if (ctx->method == GST_RTSP_OPTIONS)
        return TRUE;
    if (!source_of(ctx->uri, source, sizeof(source))) {
        reply(ctx, GST_RTSP_STS_NOT_FOUND);
        return FALSE;
    }
    int has_auth = gst_rtsp_message_get_header(ctx->request, GST_RTSP_HDR_AUTHORIZATION,
                                               &authorization, 0) == GST_RTSP_OK;
    if (!plain_credentials_allowed(s, ip)) {
        /* Not even checked: a password sent in clear over the network is
         * refused whether or not it is right. */
        if (has_auth)
            audit_denied(s, ip, "anonymous", source, "credentials over plain RTSP");
        reply(ctx, GST_RTSP_STS_FORBIDDEN);
        return FALSE;
    }
    if (!has_auth) {
        reply(ctx, GST_RTSP_STS_UNAUTHORIZED);
        return FALSE;
    }
    int rc = rly_creds_check(s->creds, authorization, ip, &who);
    if (rc != VG_OK) {
        audit_denied(s, ip, "anonymous", source,
                     rc == VG_EBUSY ? "too many failed logins" : "wrong credentials");
        reply(ctx, rc == VG_ENOTFOUND || rc == VG_EBUSY ? GST_RTSP_STS_UNAUTHORIZED
                                                       : GST_RTSP_STS_SERVICE_UNAVAILABLE);
        return FALSE;
    }
    rly_feed_t *f = rly_server_find_feed(s, source);
    int known = f != NULL;
    int ok = rly_may_watch(&who, source, known ? f->kind : VG_SOURCE_VIDEO) && known;
    rly_feed_unref(f);
    if (!ok) {
        audit_denied(s, ip, who.actor, source,
                     known ? "no live permission for this source" : "no such source");
        reply(ctx, GST_RTSP_STS_NOT_FOUND);
        sodium_memzero(&who, sizeof(who));
        return FALSE;
    }
    if (cs) {
        g_mutex_lock(&cs->mu);
        snprintf(cs->actor, sizeof(cs->actor), "%s", who.actor);
        cs->who = who;
        cs->have_who = 1;
        g_mutex_unlock(&cs->mu);
    }
    sodium_memzero(&who, sizeof(who));
    return TRUE;
}

/* A pipeline built before the camera delivered a keyframe would wait for
 * one while the client waits for DESCRIBE's answer: 503 instead; so for a
 * feed with as many shared media as it may have (tap.c). */
static gboolean check_construct(GstRTSPContext *ctx)
{
    static int64_t last_log_us;
    rly_feed_t *f = rly_factory_feed(ctx->factory);
    int full = f && rly_taps_full(f);
    if (f && !full && rly_feed_ready(f))
        return TRUE;
    if (full) {
        int64_t now = vg_clock_mono(f->srv->clock);
        if (now - last_log_us >= REFUSED_LOG_EVERY_US) {
            vg_warn("source=%s relay: too many pipelines still held by idle clients: "
                    "refusing new clients until they go", f->name);
            last_log_us = now;
        }
    }
    reply(ctx, GST_RTSP_STS_SERVICE_UNAVAILABLE);
    return FALSE;
}

static gboolean auth_check(GstRTSPAuth *auth, GstRTSPContext *ctx, const gchar *check)
{
    RlyAuth *self = (RlyAuth *)auth;
    if (g_str_equal(check, GST_RTSP_AUTH_CHECK_CONNECT))
        return check_connect(self, ctx, check);
    if (g_str_equal(check, GST_RTSP_AUTH_CHECK_URL))
        return check_url(self->srv, ctx);
    if (g_str_equal(check, GST_RTSP_AUTH_CHECK_MEDIA_FACTORY_CONSTRUCT))
        return check_construct(ctx);
    if (g_str_equal(check, GST_RTSP_AUTH_CHECK_MEDIA_FACTORY_ACCESS))
        return TRUE; /* decided by check_url */
    return FALSE;    /* e.g. client-chosen transport settings (multicast) */
}

static void auth_class_init(gpointer klass, gpointer data)
{
    (void)data;
    auth_parent_class = g_type_class_peek_parent(klass);
    GST_RTSP_AUTH_CLASS(klass)->check = auth_check;
}

/* Registered by hand rather than with G_DEFINE_TYPE, which static
 * analysers cannot expand. */
static GType auth_type(void)
{
    static gsize type;
    if (g_once_init_enter(&type)) {
        GType t = g_type_register_static_simple(GST_TYPE_RTSP_AUTH,
                                                g_intern_static_string("VigilRelayAuth"),
                                                sizeof(RlyAuthClass), auth_class_init,
                                                sizeof(RlyAuth), NULL, 0);
        g_once_init_leave(&type, t);
    }
    return type;
}

/* ---- the thread ---- */

static void *relay_thread(void *arg)
{
    rly_server_t *s = arg;
    pthread_setname_np(pthread_self(), "relay");
    g_main_context_push_thread_default(s->ctx);
    g_main_loop_run(s->loop);
    g_main_context_pop_thread_default(s->ctx);
    return NULL;
}

/* ---- revocation: live sessions end when their credential no longer allows them ---- */

static void feed_unref_cb(gpointer f)
{
    rly_feed_unref(f);
}

static GstRTSPFilterResult collect_media(GstRTSPSession *sess, GstRTSPSessionMedia *sm,
                                         gpointer data)
{
    (void)sess;
    rly_feed_t *f = rly_media_feed(gst_rtsp_session_media_get_media(sm));
    if (f) {
        rly_feed_ref(f);
        g_ptr_array_add(data, f);
    }
    return GST_RTSP_FILTER_KEEP;
}

static GstRTSPFilterResult collect_session(GstRTSPClient *c, GstRTSPSession *sess, gpointer data)
{
    (void)c;
    g_list_free(gst_rtsp_session_filter(sess, collect_media, data));
    return GST_RTSP_FILTER_KEEP;
}

/* Whether the client's sessions are still allowed: what it plays and the
 * sources of every session media it has (set up, paused, or played in a way
 * the plays missed); *retry when the index could not say. */
static int client_allowed(rly_server_t *s, client_state_t *cs, const GPtrArray *feeds,
                          int *retry)
{
    rly_principal_t now;
    if (!cs->have_who || (cs->n_plays == 0 && feeds->len == 0))
        return 1; /* its next request is checked anew: the cache was emptied */
    int rc = rly_creds_recheck(s->creds, &cs->who, &now);
    if (rc != VG_OK && rc != VG_ENOTFOUND) {
        *retry = 1;
        return 1;
    }
    int ok = rc == VG_OK;
    for (size_t i = 0; ok && i < cs->n_plays; i++) {
        const play_t *p = &cs->plays[i];
        ok = rly_may_watch(&now, p->source, p->feed ? p->feed->kind : VG_SOURCE_VIDEO);
    }
    for (guint i = 0; ok && i < feeds->len; i++) {
        const rly_feed_t *f = g_ptr_array_index(feeds, i);
        ok = rly_may_watch(&now, f->name, f->kind);
    }
    sodium_memzero(&now, sizeof(now));
    return ok;
}

static GstRTSPFilterResult recheck_client(GstRTSPServer *server, GstRTSPClient *c, gpointer data)
{
    (void)server;
    rly_server_t *s = data;
    client_state_t *cs = state_of(c);
    if (!cs)
        return GST_RTSP_FILTER_KEEP;
    GPtrArray *feeds = g_ptr_array_new_with_free_func(feed_unref_cb);
    g_list_free(gst_rtsp_client_session_filter(c, collect_session, feeds));
    g_mutex_lock(&cs->mu);
    int ok = client_allowed(s, cs, feeds, &s->recheck_pending);
    if (!ok) {
        cs->end_reason = "revoked";
        vg_notice("relay: %s may no longer watch what it plays: closing its connection from %s",
                  cs->actor, cs->ip);
    }
    g_mutex_unlock(&cs->mu);
    g_ptr_array_unref(feeds);
    if (ok)
        return GST_RTSP_FILTER_KEEP;
    /* Its sessions let their media go (a UDP session would otherwise keep
     * sending) but stay with the client and the pool, which end them
     * themselves: dropping them here left the client's transports pointing
     * at a finalized session. */
    close_job_t job = {.s = s, .medias = NULL};
    g_list_free(gst_rtsp_client_session_filter(c, scan_session, &job));
    return GST_RTSP_FILTER_REMOVE; /* closes the connection: "closed" writes relay.stop */
}

/* Relay thread, every REVOKE_POLL_S. vigilctl changes accounts from another
 * process, so the index's accounts generation is polled rather than
 * signalled; a change re-checks every live session (README: within 10 s). */
static gboolean recheck_sessions(gpointer data)
{
    rly_server_t *s = data;
    int changed = 0;
    if (rly_creds_poll(s->creds, &changed) != VG_OK)
        return G_SOURCE_CONTINUE;
    if (!changed && !s->recheck_pending)
        return G_SOURCE_CONTINUE;
    s->recheck_pending = 0;
    g_list_free(gst_rtsp_server_client_filter(s->server, recheck_client, s));
    return G_SOURCE_CONTINUE;
}

static gboolean cleanup_sessions(gpointer data)
{
    rly_server_t *s = data;
    GstRTSPSessionPool *pool = gst_rtsp_server_get_session_pool(s->server);
    gst_rtsp_session_pool_cleanup(pool); /* UDP clients that vanished */
    g_object_unref(pool);
    release_idle(s, 0);
    return G_SOURCE_CONTINUE;
}

static gboolean stop_on_thread(gpointer data)
{
    rly_server_t *s = data;
    close_job_t job = {.s = s, .medias = NULL};
    GSource *src = g_main_context_find_source_by_id(s->ctx, s->attach_id);
    if (src)
        g_source_destroy(src); /* no new connections */
    close_sessions(&job);
    release_idle(s, 1);
    g_main_loop_quit(s->loop);
    return G_SOURCE_REMOVE;
}

/* The plugin registry is cached under $HOME; a service user without a
 * writable home would rescan every plugin at each start. */
static void registry_location(const char *data_dir)
{
    if (getenv("GST_REGISTRY") || access(g_get_user_cache_dir(), W_OK) == 0)
        return;
    char *path = vg_asprintf("%s/gst-registry.bin", data_dir);
    setenv("GST_REGISTRY", path, 0);
    free(path);
}

/* RTSPS speaks TLS 1.2 and 1.3 only (README): GIO's GnuTLS backend takes
 * its priority string from the environment, read once at the first TLS
 * connection, so it is set before the server runs. It replaces whatever the
 * environment had: an older protocol must not come back by accident. */
#define RLY_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static void tls_priority(const rly_server_t *s)
{
    if (s->cfg->relay.tls_cert)
        setenv("G_TLS_GNUTLS_PRIORITY", RLY_TLS_PRIORITY, 1);
}

static int load_tls(rly_server_t *s)
{
    GError *err = NULL;
    const vg_relay_config_t *r = &s->cfg->relay;
    if (!r->tls_cert)
        return VG_OK;
    GTlsCertificate *cert = g_tls_certificate_new_from_files(r->tls_cert, r->tls_key, &err);
    if (!cert) {
        vg_err("relay: cannot load tls_cert/tls_key: %s", err->message);
        g_error_free(err);
        return VG_ECONFIG;
    }
    gst_rtsp_auth_set_tls_certificate(s->auth, cert);
    g_object_unref(cert);
    s->tls = 1;
    return VG_OK;
}

static void configure_server(rly_server_t *s, const char *host, int port)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    s->server = gst_rtsp_server_new();
    gst_rtsp_server_set_address(s->server, host);
    gst_rtsp_server_set_service(s->server, service);
    gst_rtsp_server_set_backlog(s->server, 64);
    GstRTSPThreadPool *threads = gst_rtsp_server_get_thread_pool(s->server);
    gst_rtsp_thread_pool_set_max_threads(threads, CLIENT_THREADS);
    g_object_unref(threads);
    GstRTSPSessionPool *pool = gst_rtsp_server_get_session_pool(s->server);
    gst_rtsp_session_pool_set_max_sessions(pool, (guint)s->cfg->relay.max_clients * 2);
    g_object_unref(pool);
    RlyAuth *auth = g_object_new(auth_type(), NULL);
    auth->srv = s;
    s->auth = GST_RTSP_AUTH(auth);
    gst_rtsp_server_set_auth(s->server, s->auth);
    s->mounts = gst_rtsp_server_get_mount_points(s->server);
    g_signal_connect(s->server, "client-connected", G_CALLBACK(on_client_connected), s);
}

static int start_rtsp(rly_server_t *s, const char *data_dir)
{
    char host[128];
    int port = 0;
    GError *err = NULL;
    const char *listen = s->cfg->relay.rtsp_listen;
    if (vg_config_split_listen(listen, host, sizeof(host), &port) != VG_OK)
        return VG_ECONFIG;
    registry_location(data_dir);
    tls_priority(s);
    if (!gst_init_check(NULL, NULL, &err)) {
        vg_err("relay: GStreamer does not start: %s", err ? err->message : "?");
        g_clear_error(&err);
        return VG_EIO;
    }
    client_quark = g_quark_from_static_string("vigil-relay-client");
    play_quark = g_quark_from_static_string("vigil-relay-play");
    s->ctx = g_main_context_new();
    s->loop = g_main_loop_new(s->ctx, FALSE);
    configure_server(s, host, port);
    s->rtsp = 1;
    int rc = load_tls(s);
    if (rc != VG_OK)
        return rc;
    s->attach_id = gst_rtsp_server_attach(s->server, s->ctx);
    if (s->attach_id == 0) {
        vg_err("relay: cannot listen on %s for RTSP", listen);
        return VG_EIO;
    }
    s->port = gst_rtsp_server_get_bound_port(s->server);
    GSource *timer = g_timeout_source_new_seconds(SESSION_CLEANUP_S);
    g_source_set_callback(timer, cleanup_sessions, s, NULL);
    g_source_attach(timer, s->ctx);
    g_source_unref(timer);
    int changed;
    rly_creds_poll(s->creds, &changed); /* the generation to compare with */
    timer = g_timeout_source_new(REVOKE_POLL_MS);
    g_source_set_callback(timer, recheck_sessions, s, NULL);
    g_source_attach(timer, s->ctx);
    g_source_unref(timer);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&s->thread, NULL, relay_thread, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        vg_err("relay: cannot start a thread: %s", strerror(e));
        return VG_EIO;
    }
    s->thread_started = 1;
    vg_notice("relay: RTSP%s server on %s (port %d)", s->tls ? "S" : "", listen, s->port);
    return VG_OK;
}

int rly_server_start(const rly_server_config_t *c, rly_server_t **out)
{
    rly_server_t *s = vg_calloc(1, sizeof(*s));
    s->cfg = c->cfg;
    s->clock = c->clock;
    pthread_mutex_init(&s->lock, NULL);
    char *db = vg_asprintf("%s/index.db", c->data_dir);
    int rc = rly_creds_open(db, c->clock, &s->creds);
    free(db);
    if (rc == VG_OK && s->cfg->relay.rtsp_listen[0])
        rc = start_rtsp(s, c->data_dir);
    if (rc != VG_OK) {
        rly_server_stop(s);
        return rc;
    }
    *out = s;
    return VG_OK;
}

int rly_server_port(const rly_server_t *s)
{
    return s ? s->port : 0;
}

void rly_server_stop(rly_server_t *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        g_main_context_invoke(s->ctx, stop_on_thread, s);
        pthread_join(s->thread, NULL);
        gst_rtsp_thread_pool_cleanup();
    }
    if (s->mounts)
        g_object_unref(s->mounts);
    if (s->server)
        g_object_unref(s->server);
    if (s->auth)
        g_object_unref(s->auth);
    if (s->loop)
        g_main_loop_unref(s->loop);
    if (s->ctx)
        g_main_context_unref(s->ctx);
    for (size_t i = 0; i < s->n_feeds; i++)
        rly_feed_unref(s->feeds[i]);
    free(s->feeds);
    free(s->peers);
    rly_creds_close(s->creds);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
