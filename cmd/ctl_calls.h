/* vigilctl calls ...: the contact centre's call records (README "Contact
 * centre"). */
#ifndef CTL_CALLS_H
#define CTL_CALLS_H

#include "core/config.h"
#include "index/index.h"

/* vigilctl calls import --format asterisk-csv [--utc] FILE: prints the
 * report as JSON. Returns the exit code (0, 1 index failure, 2 usage). */
int ctl_calls_import(const vg_config_t *cfg, idx_t *idx, const char *path, const char *format,
                     int utc);

#endif
