/* playback: reading the archive for people (DESIGN.md "Storage", "playback").
 * HLS playlists over the stored files' byte ranges, progressive clips built
 * from stored fragments without re-encoding, WAV and waveform peaks for audio,
 * snapshots, and signed evidence export bundles. Only this module and
 * archive/ open media files; web/ only routes to the functions declared here.
 * Every public symbol is prefixed pb_. */
#ifndef VG_PLAYBACK_H
#define VG_PLAYBACK_H

#include <stddef.h>
#include <stdint.h>

#endif
