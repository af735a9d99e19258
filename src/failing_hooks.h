/*-------------------------------------------------------------------------
 *
 * failing_hooks.h
 *	  Since when each hook has been failing: the clock that disables a hook
 *	  nothing is delivered to (cocohooks.disable_failing_hooks_after).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_FAILING_HOOKS_H
#define COCOHOOKS_FAILING_HOOKS_H

#include "postgres.h"

#include "utils/timestamp.h"

/* what the server log does with a failed attempt */
typedef enum CocoFailureLine
{
	COCO_LINE_EACH,				/* a line of its own: the hook has no clock */
	COCO_LINE_FIRST,			/* a line of its own: the hook's first failure */
	COCO_LINE_COUNTED			/* counted for the hook's next summary line */
} CocoFailureLine;

extern void coco_failing_init(void);
extern TimestampTz coco_failing_note_failure(int64 hook_id, TimestampTz now);
extern void coco_failing_note_success(int64 hook_id);
extern void coco_failing_note_disabled(int64 hook_id);
extern CocoFailureLine coco_failing_count_attempt(int64 hook_id, bool for_good,
												  const char *error,
												  TimestampTz *since);
extern void coco_failing_report(void);
extern long coco_failing_report_timeout_ms(void);
extern bool coco_failing_dirty(void);
extern void coco_failing_write(void);
extern void coco_failing_written(void);
extern void coco_failing_reconcile(void);

#endif							/* COCOHOOKS_FAILING_HOOKS_H */
