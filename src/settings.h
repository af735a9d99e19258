/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  The settings of cocohooks, and the checks of the mode they put the
 *	  server in.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_SETTINGS_H
#define COCOHOOKS_SETTINGS_H

#include "postgres.h"

typedef enum CocoDurability
{
	COCO_DURABILITY_MEMORY,
	COCO_DURABILITY_WAL
} CocoDurability;

typedef enum CocoHttp2
{
	COCO_HTTP2_OFF,				/* HTTP/1.1 to every receiver */
	COCO_HTTP2_TLS,				/* HTTP/2 where an https receiver offers it */
	COCO_HTTP2_PRIOR_KNOWLEDGE	/* also over cleartext http://, unasked */
} CocoHttp2;

typedef enum CocoLogDeliveries
{
	COCO_LOG_NONE,
	COCO_LOG_FAILURES,
	COCO_LOG_ALL
} CocoLogDeliveries;

extern bool cocohooks_api_session;
extern char *cocohooks_database;
extern int	cocohooks_queue_size;	/* kB */
extern int	cocohooks_max_databases;
extern int	cocohooks_max_hook_stats;
extern int	cocohooks_max_concurrent_deliveries;
extern int	cocohooks_max_host_connections;
extern int	cocohooks_max_host_streams;
extern int	cocohooks_http2;	/* CocoHttp2 */
extern int	cocohooks_log_deliveries;	/* CocoLogDeliveries */
extern int	cocohooks_retry_max_backoff;	/* ms */
extern int	cocohooks_disable_failing_hooks_after;	/* ms, 0: never */
extern int	cocohooks_log_retention;	/* minutes, successes; 0: forever */
extern int	cocohooks_log_retention_failed; /* minutes, failures; 0: forever */
extern int	cocohooks_log_failures_every;	/* s, 0: every failed attempt */
extern int	cocohooks_durability;	/* CocoDurability */
extern int	cocohooks_max_wal_retention;	/* MB, -1: no limit */
extern char *cocohooks_ca_file;
extern char *cocohooks_traceparent;	/* "": none */
extern char *cocohooks_tracestate;

extern void coco_settings_define(void);

/* true when events go into the WAL: durability = wal and the server allows it */
extern bool coco_wal_mode(void);
extern void coco_warn_if_wal_unavailable(void);

/* true when the library was loaded through shared_preload_libraries */
extern bool coco_preloaded;
extern void coco_require_preload(void);

#endif							/* COCOHOOKS_SETTINGS_H */
