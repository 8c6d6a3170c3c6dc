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
    const char *checkpoints; /* audit verify --checkpoints FILE: a copy kept elsewhere */
    const char *key;         /* audit verify --key FILE: the public key kept elsewhere */
    int json;
} ctl_accounts_opts_t;

/* Whether argv names a user/token/audit command (dispatch to it). */
int ctl_accounts_handles(int argc, char **argv);
/* Whether that command changes the index (open it read-write). */
int ctl_accounts_writes(int argc, char **argv);
/* Runs it; returns the exit code (0 ok, 1 failure, 2 bad usage or input). */
int ctl_accounts_dispatch(const vg_config_t *cfg, idx_t *idx, int argc, char **argv,
                          const ctl_accounts_opts_t *o);

/* The actor of vigilctl's audit rows: "system:vigilctl uid=1000(ivanov)",
 * with " sudo=NAME" when run through sudo (SUDO_USER). */
void ctl_actor(char *out, size_t size);
/* An audit row by that actor from "local", stamped now. */
void ctl_audit_row(idx_audit_t *row, const char *action, const char *object, int64_t from_us,
                   int64_t to_us, const char *result, const char *detail);
/* Appends such a row; says on stderr why it could not. */
int ctl_audit(idx_t *idx, const char *action, const char *object, int64_t from_us,
              int64_t to_us, const char *result, const char *detail);
/* A change with its row in one transaction (idx_audited_change); says on
 * stderr when the row could not be written (VG_EAUDIT, nothing changed). */
int ctl_change(idx_t *idx, idx_change_fn change, void *arg, idx_audit_t *row);

#endif
