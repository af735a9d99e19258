/*-------------------------------------------------------------------------
 *
 * retry_queue.h
 *	  Deliveries waiting to retry in the worker, soonest first, and the
 *	  back-off schedule.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_RETRY_QUEUE_H
#define COCOHOOKS_RETRY_QUEUE_H

#include "postgres.h"

#include "lib/pairingheap.h"
#include "utils/timestamp.h"

/* embedded in whatever waits to retry (the engine's Delivery) */
typedef struct CocoRetry
{
	pairingheap_node node;
	TimestampTz at;				/* due then */
} CocoRetry;

/* the struct of type that holds retry, a CocoRetry * in its field member */
#define coco_retry_container(type, member, retry) \
	((type *) ((char *) (retry) - offsetof(type, member)))

extern void coco_retry_init(void);
extern void coco_retry_add(CocoRetry *retry, TimestampTz at);
extern void coco_retry_remove(CocoRetry *retry);
extern CocoRetry *coco_retry_pop_due(TimestampTz now);
extern long coco_retry_next_ms(void);
extern int	coco_retry_count(void);
/* the longest the back-off's cap grows to, however long an event fails */
#define COCO_RETRY_CAP_MAX_MS	(6L * 3600 * 1000)

extern long coco_retry_delay_ms(int attempt, long retry_after_s,
								int64 since_commit_ms);

#endif							/* COCOHOOKS_RETRY_QUEUE_H */
