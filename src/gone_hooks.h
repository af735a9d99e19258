/*-------------------------------------------------------------------------
 *
 * gone_hooks.h
 *	  Hooks the worker disables (their receiver answered 410 Gone, or
 *	  nothing was delivered to them for too long), and their waiting
 *	  events not sent.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_GONE_HOOKS_H
#define COCOHOOKS_GONE_HOOKS_H

#include "cocohooks.h"

#define COCO_DISABLE_REASON_LEN	160

/* A hook the worker disables in the catalog with its next log rows. */
typedef struct CocoHookDisable
{
	int64		hook_id;
	char		reason[COCO_DISABLE_REASON_LEN];
} CocoHookDisable;

extern void coco_gone_note(int64 hook_id, const char *reason,
						   const char *not_sent);
extern char *coco_gone_skips(int64 hook_id, TimestampTz queued_at);
extern int	coco_gone_pending(CocoHookDisable **disables);
extern void coco_gone_written(void);

#endif							/* COCOHOOKS_GONE_HOOKS_H */
