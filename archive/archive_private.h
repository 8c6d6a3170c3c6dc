/* Shared inside archive/ only. */
#ifndef ARC_ARCHIVE_PRIVATE_H
#define ARC_ARCHIVE_PRIVATE_H

#include <stdint.h>

/* "media/<source>/<YYYY-MM-DD>/<start_us>.<ext>" (malloc'd). */
char *arc_segment_rel_path(const char *source, int64_t start_us, const char *ext);
/* Creates the directories above rel_path under data_dir, fsyncing the parent
 * of each one created so the new entries survive a crash. */
int arc_make_parent_dirs(const char *data_dir, const char *rel_path);
/* The same; sync = 0 leaves the fsyncs to the caller (the writer's finisher,
 * off the source's thread). *created (if not NULL) counts new directories. */
int arc_make_parent_dirs_ex(const char *data_dir, const char *rel_path, int sync, int *created);

#endif
