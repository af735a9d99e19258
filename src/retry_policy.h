/*-------------------------------------------------------------------------
 *
 * retry_policy.h
 *	  What becomes of a failed attempt: retried from memory, parked, or
 *	  failed for good.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_RETRY_POLICY_H
#define COCOHOOKS_RETRY_POLICY_H

#include "postgres.h"

#include "utils/timestamp.h"

#include "cocohooks.h"
#include "hook_settings.h"
#include "http_client.h"

/*
 * Deliveries waiting to retry in memory, and deliveries waiting behind an
 * earlier one of their document, each bounded by a multiple of
 * cocohooks.max_concurrent_deliveries; a retry due this far ahead is parked.
 */
#define COCO_RETRY_BACKLOG_FACTOR	16
#define COCO_ORDER_BACKLOG_FACTOR	4
#define COCO_PARK_AFTER_MS			8000

typedef enum CocoFailureStep
{
	COCO_FAILED_FOR_GOOD,
	COCO_RETRY_IN_MEMORY,
	COCO_RETRY_PARKED
} CocoFailureStep;

extern CocoFailureStep coco_failure_step(const CocoEventHeader *msg,
										 const CocoHookTarget *target,
										 const char *webhook_id, int attempts,
										 bool given_up, bool in_line,
										 const CocoHttpResult *r,
										 TimestampTz *retry_at, char **error);

#endif							/* COCOHOOKS_RETRY_POLICY_H */
