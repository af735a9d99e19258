/*-------------------------------------------------------------------------
 *
 * backfill_source.h
 *	  The worker's source of backfills' events.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_BACKFILL_SOURCE_H
#define COCOHOOKS_BACKFILL_SOURCE_H

#include "postgres.h"

extern void coco_backfill_init(void);
extern bool coco_backfill_take(void);
extern long coco_backfill_timeout_ms(void);

#endif							/* COCOHOOKS_BACKFILL_SOURCE_H */
