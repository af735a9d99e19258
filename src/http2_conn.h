/*-------------------------------------------------------------------------
 *
 * http2_conn.h
 *	  HTTP/2 connections the worker frames itself (nghttp2), many POSTs at
 *	  once as streams of each.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HTTP2_CONN_H
#define COCOHOOKS_HTTP2_CONN_H

#include "postgres.h"

#include <curl/curl.h>

#include "datatype/timestamp.h"

#include "http1_conn.h"

/* at most this many streams at once on one connection */
#define COCO_H2_MAX_STREAMS	100

typedef struct CocoH2Pool CocoH2Pool;
typedef struct CocoH2Conn CocoH2Conn;

/* a stream may start on a connection to origin again (one ended, or closed) */
typedef void (*CocoH2RoomFn) (void *owner, const char *origin);

extern CocoH2Pool *coco_h2_pool_create(int epfd, CocoH1DoneFn done,
									   CocoH1ReconnectFn reconnect,
									   CocoH1ReleaseFn release,
									   CocoH2RoomFn room, void *owner);
extern void coco_h2_set_max_conns(CocoH2Pool *pool, int max_conns);
extern CocoH2Conn *coco_h2_conn_with_room(CocoH2Pool *pool, const char *origin);
extern int	coco_h2_conns(CocoH2Pool *pool, const char *origin);
extern CocoH2Conn *coco_h2_adopt(CocoH2Pool *pool, int fd, CURL *easy,
								  const char *origin, const char *received,
								  size_t received_len);
extern void coco_h2_send(CocoH2Pool *pool, CocoH2Conn *conn, CocoH1Request *req);
extern void coco_h2_flush(CocoH2Pool *pool);
extern bool coco_h2_owns_event(uint64 data);
extern void coco_h2_event(CocoH2Pool *pool, uint64 data, uint32 events,
						  TimestampTz now);
extern long coco_h2_timeout_ms(CocoH2Pool *pool, TimestampTz now);
extern void coco_h2_expire(CocoH2Pool *pool, TimestampTz now);
extern void coco_h2_reap(CocoH2Pool *pool);

#endif							/* COCOHOOKS_HTTP2_CONN_H */
