/*-------------------------------------------------------------------------
 *
 * wal_source.h
 *	  The worker's reader of the events in the WAL (cocohooks.durability =
 *	  wal): start and stop, the delivery cursor, the restart point.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_WAL_SOURCE_H
#define COCOHOOKS_WAL_SOURCE_H

#include "postgres.h"

extern bool coco_wal_source_start(void);
extern void coco_wal_source_recheck(void);
extern bool coco_wal_source_take(void);
extern void coco_wal_source_advance(void);
extern long coco_wal_source_timeout_ms(void);
extern bool coco_wal_source_behind(void);
extern bool coco_wal_source_reading(void);
extern bool coco_wal_source_handed_on_through(uint64 lsn);
extern void coco_wal_source_exit(void);
extern bool coco_wal_source_read_for_good(uint64 lsn);
extern uint64 coco_wal_retention_cut(void);

#endif							/* COCOHOOKS_WAL_SOURCE_H */
