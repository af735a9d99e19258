/*-------------------------------------------------------------------------
 *
 * http1_conn.h
 *	  Kept-alive HTTP/1.1 connections the worker writes and reads itself.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HTTP1_CONN_H
#define COCOHOOKS_HTTP1_CONN_H

#include "postgres.h"

#include <curl/curl.h>

#include "datatype/timestamp.h"

#include "http1_wire.h"
#include "http_result.h"

typedef struct CocoH1Pool CocoH1Pool;
typedef struct CocoH1Conn CocoH1Conn;

/* One POST; its owner keeps it, and what it points to, until it is done. */
typedef struct CocoH1Request
{
	CocoH1Url	url;
	struct curl_slist *headers;
	const char *body;
	size_t		body_len;
	TimestampTz started;
	TimestampTz deadline;
	bool		retried;		/* sent again after a kept-alive connection died */
	char	   *excerpt;		/* COCO_RESPONSE_EXCERPT bytes for the body */
	char	   *errbuf;			/* CURL_ERROR_SIZE bytes for an error */
} CocoH1Request;

/* the request's answer, or why there is none */
typedef void (*CocoH1DoneFn) (void *owner, CocoH1Request *req,
							  const CocoHttpResult *result);
/* the connection died before any answer: connect anew and send again */
typedef void (*CocoH1ReconnectFn) (void *owner, CocoH1Request *req);
/* a TLS connection is closed: its libcurl handle goes back */
typedef void (*CocoH1ReleaseFn) (void *owner, CURL *easy);

extern CocoH1Pool *coco_h1_pool_create(int epfd, CocoH1DoneFn done,
									   CocoH1ReconnectFn reconnect,
									   CocoH1ReleaseFn release, void *owner);
extern void coco_h1_set_max_conns(CocoH1Pool *pool, int max_conns);
extern CocoH1Conn *coco_h1_idle_conn(CocoH1Pool *pool, const char *origin,
									 TimestampTz now);
extern CocoH1Conn *coco_h1_adopt(CocoH1Pool *pool, int fd, CURL *easy,
								  const char *origin);
extern void coco_h1_send(CocoH1Pool *pool, CocoH1Conn *conn, CocoH1Request *req);
extern bool coco_h1_owns_event(uint64 data);
extern void coco_h1_event(CocoH1Pool *pool, uint64 data, uint32 events,
						  TimestampTz now);
extern long coco_h1_timeout_ms(CocoH1Pool *pool, TimestampTz now);
extern void coco_h1_expire(CocoH1Pool *pool, TimestampTz now);
extern void coco_h1_reap(CocoH1Pool *pool);

#endif							/* COCOHOOKS_HTTP1_CONN_H */
