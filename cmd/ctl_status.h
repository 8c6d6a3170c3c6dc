/* vigilctl status (see ctl_status.c). */
#ifndef CTL_STATUS_H
#define CTL_STATUS_H

#include <jansson.h>

#include "core/config.h"
#include "index/index.h"

/* Prints the running daemon's status; 0, or 1 when vigild is not running. */
int ctl_status(const vg_config_t *cfg, idx_t *idx, int json);

#endif
