/*-------------------------------------------------------------------------
 *
 * delivery_log.h
 *	  Rows for cocohooks.deliveries, written by the worker in batches.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_DELIVERY_LOG_H
#define COCOHOOKS_DELIVERY_LOG_H

#include "cocohooks.h"

typedef struct CocoLogRow
{
	int64		hook_id;
	const char *event;
	const char *collection;
	const char *document_id;	/* text, or NULL */
	bool		success;
	long		status_code;	/* 0: no HTTP response */
	const char *error;			/* NULL on success */
	int			attempts;
	double		duration_ms;
	TimestampTz queued_at;
	TimestampTz finished_at;
	const char *webhook_id;
	const char *payload;		/* the body sent, or NULL */
	uint32		payload_len;
	const char *response;		/* start of the last response body, or NULL */
	const char *batch_id;		/* the webhook-id of its batch, or NULL */
} CocoLogRow;

struct CocoHookDisable;
extern bool coco_log_write(CocoLogRow *rows, int nrows,
						   const struct CocoHookDisable *disables, int ndisables);
extern char *coco_log_text(const char *bytes, int len);
extern int	coco_log_prune(int retention_min, int retention_failed_min, int batch);

#endif							/* COCOHOOKS_DELIVERY_LOG_H */
