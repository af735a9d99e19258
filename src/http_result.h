/*-------------------------------------------------------------------------
 *
 * http_result.h
 *	  What a finished HTTP request reports, whichever client sent it
 *	  (libcurl's transfers in http_client.c, or HTTP/1.1 of our own in
 *	  http1_conn.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HTTP_RESULT_H
#define COCOHOOKS_HTTP_RESULT_H

#include "postgres.h"

/* how much of a response body is kept, and how much is read at most */
#define COCO_RESPONSE_EXCERPT	1024
#define COCO_RESPONSE_MAX_READ	(64 * 1024)

/* What a finished request reports; error is NULL on a complete response. */
typedef struct CocoHttpResult
{
	long		status;			/* HTTP status, 0 when there was no response */
	const char *error;			/* transport error, or NULL */
	double		duration_ms;
	long		retry_after_s;	/* the response's Retry-After, or 0 */
	bool		permanent;		/* retrying cannot help (the network guard) */
	bool		timed_out;		/* no complete response within the timeout */
	bool		blocked;		/* the network guard refused an address */
	bool		multiplexed;	/* the response came over HTTP/2 */
	const char *response;		/* the start of the response body */
	int			response_len;	/* at most COCO_RESPONSE_EXCERPT bytes */
} CocoHttpResult;

#endif							/* COCOHOOKS_HTTP_RESULT_H */
