/*-------------------------------------------------------------------------
 *
 * wal_source.h
 *	  The worker's reader of the events in the WAL (cocohooks.durability =
 *	  wal).
 *
 *-------------------------------------------------------------------------
 */
#ifndef WAL_SOURCE_H
#define WAL_SOURCE_H

#include "cocohooks.h"

extern bool coco_wal_source_start(void);
extern bool coco_wal_source_active(void);
extern void coco_wal_source_recheck(void);
extern void coco_wal_source_scan(void);
extern bool coco_wal_source_take(void);
extern void coco_wal_source_advance(void);
extern long coco_wal_source_timeout_ms(void);
extern bool coco_wal_source_queue_paused(void);
extern bool coco_wal_source_behind(void);
extern void coco_wal_source_note_popped(void);
extern bool coco_wal_source_holds_popped(void);
extern void coco_wal_source_exit(void);
extern void coco_wal_source_drop_slot(void);
extern bool coco_extension_installed(void);
extern bool coco_wal_create_slot_for_install(void);
extern void coco_wal_remove_unusable_slots(void);
extern void coco_wal_drop_unused_slot(const char *why);
extern void coco_wal_drop_slot_of(Oid dboid);
extern void coco_wal_drop_orphan_slots(const Oid *dboids, int ndbs);

/* an event popped from the shared queue, and one that finished */
extern void coco_wal_note_queued(uint64 lsn);
extern bool coco_wal_started_from_wal(uint64 lsn);
extern void coco_wal_event_finished(uint64 lsn, void *source_arg);
extern uint64 coco_wal_retention_cut(void);

#endif							/* WAL_SOURCE_H */
