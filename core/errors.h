/* Status codes shared by every module: 0 is success, a negative VG_E* is a reason.
 * Callers log or print vg_strerror(rc); libav errors are logged with av_err2str
 * where they happen and mapped to VG_EMEDIA. */
#ifndef VG_ERRORS_H
#define VG_ERRORS_H

enum {
    VG_OK = 0,
    VG_EIO = -1,        /* read/write/fsync failed */
    VG_ENOSPC = -2,     /* disk full */
    VG_ECONFIG = -3,    /* configuration invalid */
    VG_EMEDIA = -4,     /* libav failed or the stream is unusable */
    VG_EDB = -5,        /* SQLite failed */
    VG_ENOTFOUND = -6,  /* no such source, row or file */
    VG_EINVAL = -7,     /* bad argument or input */
    VG_ECORRUPT = -8,   /* data on disk does not match what was expected */
    VG_EBUSY = -9,      /* held by someone else (lock) */
    VG_ESTOPPED = -10,  /* interrupted by a stop request */
    VG_EEXIST = -11,    /* a row with this name already exists */
    VG_EAUDIT = -12,    /* the audit row could not be written: the change was not made */
};

const char *vg_strerror(int code);

#endif
