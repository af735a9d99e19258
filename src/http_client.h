/*-------------------------------------------------------------------------
 *
 * http_client.h
 *	  Asynchronous HTTP POSTs for the worker, on one libcurl multi handle.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HTTP_CLIENT_H
#define COCOHOOKS_HTTP_CLIENT_H

#include "postgres.h"

#include <curl/curl.h>

typedef struct CocoHttp CocoHttp;

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

typedef void (*CocoHttpDoneFn) (void *arg, const CocoHttpResult *result);

extern CocoHttp *coco_http_create(CocoHttpDoneFn done);
extern int	coco_http_wait_fd(CocoHttp *http);
extern void coco_http_set_limits(CocoHttp *http, int max_host_connections);
extern bool coco_http_post(CocoHttp *http, const char *url,
						   struct curl_slist *headers,
						   const char *body, size_t body_len,
						   long timeout_ms, void *arg);
extern void coco_http_drive(CocoHttp *http);
extern long coco_http_timeout_ms(CocoHttp *http);

#endif							/* COCOHOOKS_HTTP_CLIENT_H */
