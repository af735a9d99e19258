/*-------------------------------------------------------------------------
 *
 * retry_queue.c
 *	  Deliveries waiting to retry, in a heap ordered by due time, and the
 *	  back-off schedule that says when.
 *
 * The delivery engine puts a failed delivery with retries left here
 * (coco_retry_add), and at each pass takes back those that are due
 * (coco_retry_pop_due) to send them through their receiver's admission
 * (origin_queue.c) again.  A delivery waiting here holds no place in the
 * shared queue and no slot of its receiver.
 *
 * Runs in the worker only.  Invariants: the heap's first element is the
 * soonest due; coco_retry_count() is the number of elements in it.  The
 * heap is allocated once, in the memory context current at
 * coco_retry_init(); its elements belong to the caller.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"

#include "retry_queue.h"
#include "settings.h"

static pairingheap *retries = NULL;
static int	nretries = 0;

static int
retry_compare(const pairingheap_node *a, const pairingheap_node *b, void *arg)
{
	const CocoRetry *ra = pairingheap_const_container(CocoRetry, node, a);
	const CocoRetry *rb = pairingheap_const_container(CocoRetry, node, b);

	/* the heap keeps its greatest element first: the soonest is greatest */
	if (ra->at < rb->at)
		return 1;
	if (ra->at > rb->at)
		return -1;
	return 0;
}

void
coco_retry_init(void)
{
	retries = pairingheap_allocate(retry_compare, NULL);
	nretries = 0;
}

/* retry waits until at. */
void
coco_retry_add(CocoRetry *retry, TimestampTz at)
{
	retry->at = at;
	pairingheap_add(retries, &retry->node);
	nretries++;
}

/* Takes retry out before it is due (it is parked instead). */
void
coco_retry_remove(CocoRetry *retry)
{
	pairingheap_remove(retries, &retry->node);
	nretries--;
}

/* Takes out the soonest retry if it is due at now, else returns NULL. */
CocoRetry *
coco_retry_pop_due(TimestampTz now)
{
	CocoRetry  *retry;

	if (pairingheap_is_empty(retries))
		return NULL;
	retry = pairingheap_container(CocoRetry, node, pairingheap_first(retries));
	if (retry->at > now)
		return NULL;
	(void) pairingheap_remove_first(retries);
	nretries--;
	return retry;
}

/* Milliseconds until the next retry is due, -1 if none is waiting. */
long
coco_retry_next_ms(void)
{
	CocoRetry  *retry;

	if (pairingheap_is_empty(retries))
		return -1;
	retry = pairingheap_container(CocoRetry, node, pairingheap_first(retries));
	return TimestampDifferenceMilliseconds(GetCurrentTimestamp(), retry->at);
}

/* How many wait to retry. */
int
coco_retry_count(void)
{
	return nretries;
}

/*
 * Milliseconds before retry number `attempt` (1 for the first retry) of an
 * event committed since_commit_ms ago: about 1 s doubling each time, capped
 * by the larger of cocohooks.retry_max_backoff and a quarter of the time
 * since the commit (at most COCO_RETRY_CAP_MAX_MS).  So a receiver back
 * after an outage of T gets its events within about T/4, and a day of
 * retrying costs a few dozen attempts, not one a minute.
 *
 * Jitter spreads the retries of many events: the back-off is taken 0.75 to
 * 1.25 times, the cap 0.75 to 1 times (so a capped retry is jittered too,
 * and never later than the cap).  A Retry-After from the receiver is
 * honoured up to the same cap.  The caller clamps the result to the
 * hook's retry_for deadline.
 */
long
coco_retry_delay_ms(int attempt, long retry_after_s, int64 since_commit_ms)
{
	double		r = pg_prng_double(&pg_global_prng_state);
	double		base = 1000.0 * (double) (1L << Min(attempt - 1, 20));
	double		cap = Max((double) cocohooks_retry_max_backoff,
						  Min((double) Max(since_commit_ms, 0) / 4.0,
							  (double) COCO_RETRY_CAP_MAX_MS));
	double		delay = Min(base * (0.75 + 0.5 * r), cap * (0.75 + 0.25 * r));

	if (retry_after_s > 0)
		delay = Max(delay, Min((double) retry_after_s * 1000.0, cap));
	return (long) delay;
}
