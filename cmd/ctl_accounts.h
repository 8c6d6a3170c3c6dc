/* vigilctl user, token and audit commands (see ctl_accounts.c). */
#ifndef CTL_ACCOUNTS_H
#define CTL_ACCOUNTS_H

#include "core/config.h"
#include "index/index.h"

typedef struct {
    const char *role;    /* --role */
    const char *sources; /* --sources a,b */
    const char *perm;    /* --perm p1,p2 */
    const char *from, *to;
    int json;
} ctl_accounts_opts_t;

/* Whether argv names a user/token/audit command (dispatch to it). */
int ctl_accounts_handles(int argc, char **argv);
/* Whether that command changes the index (open it read-write). */
int ctl_accounts_writes(int argc, char **argv);
/* Runs it; returns the exit code (0 ok, 1 failure, 2 bad usage or input). */
int ctl_accounts_dispatch(const vg_config_t *cfg, idx_t *idx, int argc, char **argv,
                          const ctl_accounts_opts_t *o);

#endif
