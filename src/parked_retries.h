/*-------------------------------------------------------------------------
 *
 * parked_retries.h
 *	  Deliveries parked in cocohooks.retry_queue until their next attempt.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_PARKED_RETRIES_H
#define COCOHOOKS_PARKED_RETRIES_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/timestamp.h"

#include "cocohooks.h"
#include "event_source.h"

/* the source of the deliveries taken back from the table */
extern const CocoEventSource coco_parked_source;

extern void coco_parked_init(void);
extern bool coco_parked_available(void);
extern bool coco_parked_full(void);
extern bool coco_parked_holds(int64 hook_id, int64 document_key,
							  const CocoEventSource *source);
extern void coco_parked_add(const CocoEventHeader *msg, const CocoHookSpec *spec,
							const char *event_id, const char *webhook_id,
							int attempts, TimestampTz next_attempt,
							int64 document_key,
							const CocoEventSource *source, void *source_arg);
extern void coco_parked_flush(void);
extern void coco_parked_pull_in(int64 hook_id, TimestampTz since, double factor);
extern int	coco_parked_take(StringInfo out, int64 *ids, int max);
extern void coco_parked_defer(void);
extern bool coco_parked_waiting(void);
extern long coco_parked_timeout_ms(void);

#endif							/* COCOHOOKS_PARKED_RETRIES_H */
