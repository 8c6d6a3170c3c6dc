/* The daemon's configuration, read from an INI file with libinih. Every key is
 * checked; an unknown key or section, a bad value or a bad source name is an
 * error naming file:line. Config fields only: runtime state lives elsewhere. */
#ifndef VG_CONFIG_H
#define VG_CONFIG_H

#include <stddef.h>

#include "log.h"

typedef enum { VG_SOURCE_VIDEO, VG_SOURCE_AUDIO } vg_source_kind_t;
typedef enum { VG_TRANSPORT_TCP, VG_TRANSPORT_UDP } vg_transport_t;

typedef struct {
    char *name;               /* [a-z0-9][a-z0-9-]{0,62} */
    char *url;                /* rtsp:// or rtsps://; may hold credentials: never log it raw */
    vg_source_kind_t kind;
    vg_transport_t transport; /* rtsp_transport = tcp | udp */
    int keep_days;            /* 0: inherit [retention] keep_days */
    int keep_days_line;       /* where it was set, for messages */
    int relay;                /* relay = on (1, default) | off (0): RTSP mount and push */
    char *push;               /* push = URL: NULL inherits [relay] push, "" is off */
    char *pbx_extension;      /* calls: the PBX extension on this line (CDR channels); NULL */
    /* calls (voice activity, the announcement check): */
    int call_detect_vad;      /* call_detect = vad (1) | off (0, default); audio only */
    int call_gap_seconds;     /* a silence this long ends a vad call (1..600, default 8) */
    int call_min_seconds;     /* shorter vad calls are dropped (0..600, default 2) */
    char *announcement;       /* this line's reference announcement WAV; NULL: [calls] */
    int no_transcode;         /* transcode = no: no H.264 made of this H.265 camera for browsers */
} vg_source_config_t;

/* [desk NAME] (calls): a workplace's audio lines and the cameras that see it. */
typedef struct {
    char *name;
    char **lines;             /* audio source names */
    size_t n_lines;
    char **cameras;           /* video source names */
    size_t n_cameras;
} vg_desk_config_t;

/* [queue NAME] (calls): a PBX queue's own reference announcement. */
typedef struct {
    char *name;               /* as the PBX names it (the call's queue) */
    char *announcement;       /* the queue's reference WAV; wins over [source] and [calls] */
} vg_queue_config_t;

typedef enum { VG_ON_FULL_OVERWRITE, VG_ON_FULL_STOP } vg_on_full_t;

/* [retention]: see README "Retention". */
typedef struct {
    int min_days;            /* floor: the age sweep never deletes anything younger */
    int keep_days;           /* delete once older than this (>= min_days) */
    long long capacity_bytes; /* 0: the filesystem's size */
    int reserve_percent;     /* keep this much of capacity free */
    vg_on_full_t on_full;    /* what disk pressure may do below the floor */
    int sweep_seconds;       /* how often vigild checks age and disk pressure */
    int call_metadata_days;  /* calls: keep a call's metadata this long even when its
                              * audio is gone (0: deleted with its audio) */
} vg_retention_config_t;

/* [server] HTTP keys: see README "HTTP API". */
typedef struct {
    char *listen;             /* http_listen "host:port" or "[v6]:port"; "" = HTTP off */
    char *tls_cert, *tls_key; /* both or neither; NULL = plain HTTP */
    int session_idle_minutes; /* a session unused this long ends */
    int session_max_hours;    /* a session ends this long after login, used or not */
    int metrics_token;        /* metrics_access = token: GET /metrics needs a token with
                               * the metrics permission; 0 (loopback): loopback only */
    char *trusted_proxies;    /* comma-separated numeric addresses whose X-Forwarded-For
                               * is believed; NULL: the header is ignored */
    char *ui_dir;             /* the browser UI's files (default VG_UI_DIR, set at build) */
    char *timezone;           /* IANA zone the UI shows times in; NULL: the system's */
    int require_access_reason; /* calls: opening a call or a recording needs reason= */
    int connections_per_ip;   /* open HTTP connections from one address (loopback and
                               * trusted_proxies excepted), read at start */
} vg_http_config_t;

/* [relay]: see README "Central monitoring point". */
typedef struct {
    char *rtsp_listen;        /* "host:port"; "" = no RTSP server (the default) */
    char *tls_cert, *tls_key; /* both or neither; NULL = plain RTSP */
    int max_clients;          /* RTSP connections at once, in total */
    int max_clients_per_ip;   /* and from one address */
    int send_interval_ms;     /* a TCP client's packets go out together at most this
                               * often (0: each as it comes); fewer, larger sends */
    char *push;               /* push URL template with {source}; NULL = no push */
    int allow_plain_credentials; /* 1: credentials over plain RTSP from any address;
                                  * 0 (default): from loopback only */
} vg_relay_config_t;

/* [playback]: see README "Playback". */
typedef struct {
    int wav_max_seconds;      /* longest audio.wav / clip.wav / peaks range */
    int clip_max_seconds;     /* longest clip.mp4/.mov/.mkv range, 60..86400 */
    int snapshot_workers;     /* snapshot decodes at once; more get 503 */
    int snapshot_threads;     /* threads one snapshot decodes and encodes with */
    int snapshot_cache_mib;   /* bound of data_dir/cache/snapshots */
    int transcode_hevc;       /* 1: H.265 -> H.264 for browsers on request (default 0) */
    int transcode_max;        /* such transcodes at once; more get 503 (default 2) */
} vg_playback_config_t;

/* [live]: see README "Live view". */
typedef struct {
    int enabled;              /* enabled = yes (default) | no: no WHEP, no live.mp4 */
    int max_viewers;          /* live sessions at once, in total (default 32) */
    int max_viewers_per_user; /* and of one account or token (default 8) */
    char *stun;               /* stun://host:port for viewers behind NAT; NULL: none */
    char *turn;               /* turn(s)://user:pass@host:port; NULL: none */
} vg_live_config_t;
/* [calls]: the announcement check (README "Contact centre"). */
typedef struct {
    char *announcement;         /* the reference announcement WAV; NULL: no check */
    int announcement_window;    /* it must start within this many seconds (5..120, default 20) */
} vg_calls_config_t;

typedef struct {
    char *path;                 /* the file it was read from */
    char *data_dir;             /* index at data_dir/index.db, media under data_dir/media */
    vg_log_level_t log_level;   /* [server] log_level */
    int segment_seconds;        /* [archive] segment_seconds, 2..300 */
    int sync_seconds;           /* [archive] sync_seconds, 1..5: fdatasync the open segment
                                 * at least this often (the power-cut loss bound) */
    int fragment_max_seconds;   /* [archive] fragment_max_seconds, 1..10: a fragment is cut
                                 * this long after the last even without a keyframe */
    int fragment_max_mib;       /* [archive] fragment_max_mib, 1..64: or at this size */
    int alarm_hold_seconds;     /* [archive] alarm_hold_seconds, 1..86400: storage_io_error's
                                 * least life after the last error */
    int audit_checkpoint_seconds; /* [server] how often the audit head is signed, 1..300 */
    vg_retention_config_t retention;
    vg_http_config_t http;
    vg_relay_config_t relay;
    int exports_keep_days;      /* [exports] keep_days, 1..3650 (default 30) */
    vg_playback_config_t playback;
    double announcement_min_rate; /* [calls] 0..1 (default 0.98): announcement_rate_low */
    int announcement_check_seconds; /* [calls] how often that rate is checked, 1..86400 */
    vg_live_config_t live;
    vg_source_config_t *sources;
    size_t n_sources;
    vg_desk_config_t *desks;    /* calls: [desk NAME] sections */
    size_t n_desks;
    vg_calls_config_t calls;    /* [calls] */
    vg_queue_config_t *queues;  /* calls: [queue NAME] sections */
    size_t n_queues;
} vg_config_t;

/* Reads path into *out (caller frees with vg_config_free). On failure returns
 * VG_ECONFIG (or VG_EIO when the file cannot be read) and writes a one-line
 * reason such as "vigil.conf:7: unknown key 'foo' in [archive]" into err. */
int vg_config_load(const char *path, vg_config_t *out, char *err, size_t err_size);
void vg_config_free(vg_config_t *cfg);
const vg_source_config_t *vg_config_find_source(const vg_config_t *cfg, const char *name);
/* calls: the desk of that name, or NULL. */
const vg_desk_config_t *vg_config_find_desk(const vg_config_t *cfg, const char *name);
/* calls: the [queue NAME] of that queue, or NULL. */
const vg_queue_config_t *vg_config_find_queue(const vg_config_t *cfg, const char *name);
/* Splits http_listen text ("host:port", "[v6]:port") into host (brackets
 * removed) and port 1..65535. VG_EINVAL when malformed. */
int vg_config_split_listen(const char *text, char *host, size_t host_size, int *port);
/* The push URL of a source (its own push, else [relay] push with {source}
 * replaced) as a malloc'd string, or NULL when it has none or relay = off. */
char *vg_config_push_url(const vg_config_t *cfg, const vg_source_config_t *src);
/* The keep_days that applies to a source: its own, else [retention]'s. */
int vg_config_keep_days(const vg_config_t *cfg, const vg_source_config_t *src);
/* Whether addr (numeric IPv4 or IPv6 text) is one of [server] trusted_proxies. */
int vg_config_proxy_trusted(const vg_config_t *cfg, const char *addr);

/* 1 when a URL carries a secret: a password ("user:pass@host") or a
 * passphrase=/password= query value (SRT). */
int vg_url_has_secret(const char *url);
/* Names the keys holding secrets ("[source cam1] url, [relay] push") into
 * out, or "" when none do. */
void vg_config_secrets(const vg_config_t *cfg, char *out, size_t size);
/* Warns (vg_warn) when the config file is readable by every local user and
 * holds secrets, and when a TLS key file is. Called at start. */
void vg_config_warn_exposed(const vg_config_t *cfg);

#endif
