/*-------------------------------------------------------------------------
 *
 * retry_policy.c
 *	  What becomes of a failed attempt: retried from memory, parked, or
 *	  failed for good; and the server log line that says so.
 *
 * A failed attempt with retries left (and not refused for good: the
 * network guard, 410 Gone, a hook disabled) is retried after the back-off
 * (coco_retry_delay_ms).  Retries are left while both limits allow: the
 * hook's max_retries (COCO_RETRIES_UNLIMITED: none), and its retry_for
 * after the event's commit (both read from the catalog by hook_settings.c;
 * NULL: none); the last retry is clamped to
 * that deadline.  It waits in the worker's memory (retry_queue.c)
 * when its retry is near and memory holds fewer than the bound; otherwise
 * it is parked in cocohooks.retry_queue (parked_retries.c), and so is a
 * delivery of an ordered hook while documents' lines are at their bound.
 * Only a schema without that table (before ALTER EXTENSION UPDATE to
 * 0.3.0) still fails one at the in-memory bound, as 0.2 did, saying why.
 *
 * Runs in: the worker (the delivery engine).
 *
 * The server log: a failed attempt gets a LOG line naming the attempt, the
 * URL, the webhook-id and what comes next when its hook has no clock of
 * failures, or when it is the hook's first failure since its last success
 * (the line then says the hook is failing); the failures after that are
 * counted for one summary line per hook at most every
 * cocohooks.log_failures_every (failing_hooks.c), and with 0 every failed
 * attempt gets its line, as before 0.3.
 *
 * Invariants: no error is raised but out of memory; a failed delivery's
 * row in cocohooks.deliveries, not the server log, is the record of it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"
#include "utils/timestamp.h"

#include "document_order.h"
#include "failing_hooks.h"
#include "hook_settings.h"
#include "parked_retries.h"
#include "retry_policy.h"
#include "retry_queue.h"
#include "settings.h"

/*
 * When the retries of the delivery of msg to target stop: its retry_for
 * after the event's commit (0: no time limit).
 */
static TimestampTz
retry_deadline(const CocoEventHeader *msg, const CocoHookTarget *target)
{
	int64		retry_for_ms = coco_hook_retry_for_ms(target->hook_id);

	return retry_for_ms < 0 ? 0 :
		TimestampTzPlusMilliseconds(msg->queued_at, retry_for_ms);
}

/*
 * A failed attempt (number attempts) of the delivery of msg to target: what
 * comes next, when (*retry_at, for a retry), and the error for its log row
 * (*error, palloc'd).  Retries stop at whichever comes first: max_retries
 * (unless COCO_RETRIES_UNLIMITED) or the hook's retry_for after the
 * event's commit; the last retry is due at that deadline at the latest.
 */
CocoFailureStep
coco_failure_step(const CocoEventHeader *msg, const CocoHookTarget *target,
				  const char *webhook_id, int attempts, bool given_up,
				  bool in_line, const CocoHttpResult *r,
				  TimestampTz *retry_at, char **error)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz deadline = retry_deadline(msg, target);
	bool		unlimited = target->max_retries == COCO_RETRIES_UNLIMITED;
	bool		out_of_time = deadline != 0 && now >= deadline;
	bool		retry = (unlimited || attempts <= target->max_retries) && !out_of_time &&
		!given_up && !r->permanent && r->status != 410;
	bool		memory_full = coco_retry_count() >=
		cocohooks_max_concurrent_deliveries * COCO_RETRY_BACKLOG_FACTOR;
	long		delay_ms = 0;
	CocoFailureStep step = retry ? COCO_RETRY_IN_MEMORY : COCO_FAILED_FOR_GOOD;
	char		attempt[96];
	char		next[96] = "";
	CocoFailureLine line;
	TimestampTz since = 0;
	char	   *failing = NULL;

	if (retry)
	{
		delay_ms = coco_retry_delay_ms(attempts, r->retry_after_s,
									   TimestampDifferenceMilliseconds(msg->queued_at, now));
		/* the last retry goes at the deadline */
		if (deadline != 0 && TimestampTzPlusMilliseconds(now, delay_ms) > deadline)
			delay_ms = TimestampDifferenceMilliseconds(now, deadline);
	}
	if (retry && coco_parked_available() &&
		(delay_ms >= COCO_PARK_AFTER_MS || memory_full ||
		 (in_line && coco_order_waiting() >=
		  cocohooks_max_concurrent_deliveries * COCO_ORDER_BACKLOG_FACTOR)))
	{
		step = COCO_RETRY_PARKED;
		snprintf(next, sizeof(next), ", parked, retrying in %ld ms", delay_ms);
	}
	else if (retry && memory_full)
	{
		step = COCO_FAILED_FOR_GOOD;
		snprintf(next, sizeof(next), ", not retried: %d retries already wait",
				 coco_retry_count());
	}
	else if (retry)
		snprintf(next, sizeof(next), ", retrying in %ld ms", delay_ms);
	else if (out_of_time && !given_up && !r->permanent && r->status != 410)
		snprintf(next, sizeof(next), ", not retried: its retry_for ended at %s",
				 timestamptz_to_str(deadline));

	if (!unlimited)
		snprintf(attempt, sizeof(attempt), "%d of %d", attempts, target->max_retries + 1);
	else if (deadline != 0)
		snprintf(attempt, sizeof(attempt), "%d (retrying until %s)", attempts,
				 timestamptz_to_str(deadline));
	else
		snprintf(attempt, sizeof(attempt), "%d (retrying until the hook is disabled)",
				 attempts);

	*retry_at = TimestampTzPlusMilliseconds(now, delay_ms);
	*error = r->error ? pstrdup(r->error) :
		psprintf("receiver answered with HTTP status %ld", r->status);
	line = coco_failing_count_attempt(target->hook_id, step == COCO_FAILED_FOR_GOOD,
									  *error, &since);
	if (line == COCO_LINE_FIRST)
		failing = psprintf(" Hook %lld is failing since %s: its next failed attempts are summed up in a line at most every %s, until a delivery to it succeeds.",
						   (long long) target->hook_id, timestamptz_to_str(since),
						   GetConfigOptionByName("cocohooks.log_failures_every", NULL, false));
	if (line != COCO_LINE_COUNTED)
		ereport(LOG,
				(errmsg("cocohooks could not deliver %s event of collection \"%.*s\" to hook %lld: %s",
						coco_event_names[coco_event_kind(msg)],
						(int) msg->collection_len, coco_event_collection(msg),
						(long long) target->hook_id, *error),
				 errdetail("Attempt %s%s. URL: %.*s, webhook-id: %s, document_id: %.*s.%s",
						   attempt, next,
						   target->url_len, target->url, webhook_id,
						   (int) msg->document_id_len, coco_event_document_id(msg),
						   failing ? failing : "")));
	if (failing)
		pfree(failing);
	if (retry && step == COCO_FAILED_FOR_GOOD)
	{
		/* the log row says why it has fewer attempts than max_retries allows */
		char	   *plain = *error;

		*error = psprintf("%s; not retried: %d deliveries already wait to retry "
						  "(the limit is %d times cocohooks.max_concurrent_deliveries)",
						  plain, coco_retry_count(), COCO_RETRY_BACKLOG_FACTOR);
		pfree(plain);
	}
	return step;
}
