/*-------------------------------------------------------------------------
 *
 * upsert_tracker.h
 *	  INSERT ... ON CONFLICT DO UPDATE: the pre_save of an insert that
 *	  became an update.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_UPSERT_TRACKER_H
#define COCOHOOKS_UPSERT_TRACKER_H

#include "postgres.h"

#include "utils/relcache.h"

extern void coco_upsert_tracker_init(void);
extern bool coco_upsert_hold(Relation rel, Oid collection, const char *msg,
							 Size len);
extern void coco_upsert_conflict(Relation rel);

#endif							/* COCOHOOKS_UPSERT_TRACKER_H */
