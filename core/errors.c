/* Human-readable text for the VG_E* status codes. */
#include "errors.h"

const char *vg_strerror(int code)
{
    switch (code) {
    case VG_OK: return "ok";
    case VG_EIO: return "I/O error";
    case VG_ENOSPC: return "no space left on device";
    case VG_ECONFIG: return "invalid configuration";
    case VG_EMEDIA: return "media error";
    case VG_EDB: return "database error";
    case VG_ENOTFOUND: return "not found";
    case VG_EINVAL: return "invalid argument";
    case VG_ECORRUPT: return "data does not match";
    case VG_EBUSY: return "busy";
    case VG_ESTOPPED: return "stopped";
    case VG_EEXIST: return "already exists";
    case VG_EAUDIT: return "the audit row could not be written";
    default: return "unknown error";
    }
}
