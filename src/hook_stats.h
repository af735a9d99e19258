/*-------------------------------------------------------------------------
 *
 * hook_stats.h
 *	  Per-hook delivery statistics in shared memory: counters, the last
 *	  success and failure, and a histogram of commit-to-receipt latency.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_STATS_H
#define COCOHOOKS_HOOK_STATS_H

#include "postgres.h"

#include "utils/timestamp.h"

#include "http_client.h"

/* what one attempt came to */
typedef enum CocoAttemptOutcome
{
	COCO_OUTCOME_2XX = 0,
	COCO_OUTCOME_4XX,
	COCO_OUTCOME_5XX,
	COCO_OUTCOME_OTHER_STATUS,	/* 1xx, 3xx: not followed */
	COCO_OUTCOME_TIMEOUT,
	COCO_OUTCOME_CONNECTION,	/* no response: refused, reset, DNS, TLS */
	COCO_OUTCOME_BLOCKED,		/* the network guard refused the address */
	COCO_NUM_OUTCOMES
} CocoAttemptOutcome;

/*
 * Latency buckets: bucket i holds [0.5 ms * 2^(i/2), 0.5 ms * 2^((i+1)/2)),
 * the last one everything longer (up to about 17 days); two windows of
 * COCO_LATENCY_WINDOW_S, the current one and the one before.
 */
#define COCO_LATENCY_BUCKETS	64
#define COCO_LATENCY_WINDOW_S	300
#define COCO_STATS_ERROR_LEN	200

/*
 * And since the last reset, for Prometheus: counts per bucket of
 * coco_latency_bounds_s (seconds; the last bucket is everything longer)
 * and their sum.
 */
#define COCO_LATENCY_BOUNDS		16
extern const double coco_latency_bounds_s[COCO_LATENCY_BOUNDS];

typedef struct CocoHookStatsRow
{
	int64		hook_id;
	uint64		queued;			/* deliveries taken in (not retries) */
	uint64		delivered;
	uint64		failed;			/* failed for good after an attempt */
	uint64		dropped;		/* failed for good without an attempt */
	uint64		attempts[COCO_NUM_OUTCOMES];
	uint64		consecutive_failures;	/* failed attempts since a success */
	uint64		filter_errors;	/* rows its filter failed on (backends) */
	TimestampTz last_success;	/* 0: none */
	TimestampTz last_failure;
	char		last_error[COCO_STATS_ERROR_LEN];
	/* the worker's deliveries of the hook in memory, set about every second */
	int32		held;
	int32		retrying;
	TimestampTz oldest_held;	/* commit time of the oldest; 0: none */
	/* latency[0]: the window from window_start, latency[1]: the one before */
	TimestampTz window_start;
	uint32		latency[2][COCO_LATENCY_BUCKETS];
	uint64		latency_total[COCO_LATENCY_BOUNDS + 1];
	double		latency_sum_s;
	TimestampTz stats_reset;
} CocoHookStatsRow;

/* shared memory (module.c) */
extern void coco_hook_stats_shmem_request(void);
extern void coco_hook_stats_shmem_startup(void);

/* the worker: its database's hooks */
extern void coco_hook_stats_start(void);
extern void coco_hook_stats_queued(int64 hook_id);
extern void coco_hook_stats_attempt(int64 hook_id, const CocoHttpResult *r);
extern void coco_hook_stats_finished(int64 hook_id, bool success, bool attempted,
									 TimestampTz queued_at);
extern bool coco_hook_stats_held_due(bool none_held);
extern void coco_hook_stats_held(int64 hook_id, TimestampTz queued_at, bool retrying);
extern void coco_hook_stats_held_publish(void);
extern long coco_hook_stats_timeout_ms(void);
extern void coco_hook_stats_maintain(void);
extern void coco_hook_stats_forget(Oid dboid);

/* backends */
extern void coco_hook_stats_filter_error(int64 hook_id);
extern CocoHookStatsRow *coco_hook_stats_snapshot(Oid dboid, int *n);
extern void coco_hook_stats_reset(Oid dboid, int64 hook_id);
extern double coco_latency_percentile(const CocoHookStatsRow *row, double q,
									  TimestampTz now);

#endif							/* COCOHOOKS_HOOK_STATS_H */
