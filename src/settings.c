/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  The settings of cocohooks, and the checks of the mode they put the
 *	  server in.
 *
 * Loaded without shared_preload_libraries (for instance by CREATE
 * EXTENSION on a server not configured for it), only the settings any
 * session may use are defined, so that setting cocohooks.api_session still
 * works; coco_require_preload() turns every SQL entry point into a clear
 * error then.
 *
 * Runs in: every process that loads the library.  It includes nothing of
 * cocohooks but its own header: every other file may use it.
 *
 * Invariants: settings marked PGC_POSTMASTER are defined only while the
 * postmaster preloads the library (defining them later is an error);
 * cocohooks.allowed_networks is defined by network_guard.c, which parses
 * it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "utils/guc.h"

#include "settings.h"
#include "trace_context.h"

bool		cocohooks_api_session = false;
char	   *cocohooks_database = NULL;
int			cocohooks_queue_size = 64 * 1024;	/* kB */
int			cocohooks_max_databases = 16;
int			cocohooks_max_hook_stats = 1000;
int			cocohooks_max_concurrent_deliveries = 4096;
int			cocohooks_max_host_connections = 32;
int			cocohooks_max_host_streams = 1000;
int			cocohooks_http2 = COCO_HTTP2_TLS;
int			cocohooks_log_deliveries = COCO_LOG_FAILURES;
int			cocohooks_retry_max_backoff = 60000;	/* ms */
int			cocohooks_disable_failing_hooks_after = 5 * 24 * 3600 * 1000;	/* ms */
int			cocohooks_log_retention = 7 * 24 * 60;	/* minutes */
int			cocohooks_log_retention_failed = 30 * 24 * 60;	/* minutes */
int			cocohooks_log_failures_every = 60;	/* s */
int			cocohooks_durability = COCO_DURABILITY_WAL;
int			cocohooks_max_wal_retention = 10 * 1024;	/* MB */

bool		coco_preloaded = false;

char	   *cocohooks_ca_file = NULL;
char	   *cocohooks_traceparent = NULL;
char	   *cocohooks_tracestate = NULL;

static const struct config_enum_entry log_deliveries_options[] = {
	{"none", COCO_LOG_NONE, false},
	{"failures", COCO_LOG_FAILURES, false},
	{"all", COCO_LOG_ALL, false},
	{NULL, 0, false}
};

static const struct config_enum_entry http2_options[] = {
	{"off", COCO_HTTP2_OFF, false},
	{"tls", COCO_HTTP2_TLS, false},
	{"prior_knowledge", COCO_HTTP2_PRIOR_KNOWLEDGE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry durability_options[] = {
	{"memory", COCO_DURABILITY_MEMORY, false},
	{"wal", COCO_DURABILITY_WAL, false},
	{NULL, 0, false}
};

/*
 * Events go into the WAL when the setting asks for it and the server can
 * keep WAL for them: a replication slot needs wal_level replica or logical
 * and a free max_replication_slots entry.
 */
bool
coco_wal_mode(void)
{
	return cocohooks_durability == COCO_DURABILITY_WAL &&
		wal_level >= WAL_LEVEL_REPLICA && max_replication_slots > 0;
}

/*
 * A WARNING when durability = wal is asked for but the server cannot give
 * it, so the mode in force is never a surprise.
 */
void
coco_warn_if_wal_unavailable(void)
{
	if (cocohooks_durability != COCO_DURABILITY_WAL || coco_wal_mode())
		return;
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cocohooks keeps events in memory only: the server cannot keep WAL for them"),
			 errdetail("\"%s\" is \"wal\", which needs \"%s\" set to replica or logical and \"%s\" above 0; events are lost if the server crashes before they are delivered.",
					   "cocohooks.durability", "wal_level", "max_replication_slots"),
			 errhint("Set \"%s\" and \"%s\" and restart the server, or set \"%s\" to \"memory\".",
					 "wal_level", "max_replication_slots", "cocohooks.durability")));
}

/*
 * Settings that only make sense at server start; defining them later is an
 * error, so only a preloading postmaster does.
 */
static void
define_server_start_settings(void)
{
	DefineCustomStringVariable("cocohooks.database",
							   "Ignored: every database with the extension has its own worker.",
							   "Accepted, with a WARNING at server start, so that 0.1 configurations still start.",
							   &cocohooks_database,
							   "",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.max_databases",
							"Most databases with the extension, each with its own worker.",
							"CREATE EXTENSION in one more database is an error.",
							&cocohooks_max_databases,
							16,
							1,
							1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.max_hook_stats",
							"Most hooks, of all databases, whose statistics are kept (cocohooks.hook_stats).",
							"Each takes about 1 kB of shared memory. A hook past it has no statistics until the worker frees those of unregistered hooks.",
							&cocohooks_max_hook_stats,
							1000,
							0,
							1000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.queue_size",
							"Size of the shared-memory event queues, shared by all databases.",
							"Each database may use all of it but the reserve of the others (an equal share per cocohooks.max_databases). Events that do not fit wait in the WAL (durability = wal) or are dropped and counted in cocohooks.stats.",
							&cocohooks_queue_size,
							64 * 1024,
							64,
							1024 * 1024,
							PGC_POSTMASTER,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("cocohooks.durability",
							 "Where events wait for delivery: in the WAL, or in memory only.",
							 "wal: every event is written to the WAL by the transaction that causes it, and delivered whatever crashes after its commit. memory: events live in shared memory only.",
							 &cocohooks_durability,
							 COCO_DURABILITY_WAL,
							 durability_options,
							 PGC_POSTMASTER,
							 0,
							 NULL, NULL, NULL);
}

static void
define_settings(void)
{
	DefineCustomStringVariable("cocohooks.traceparent",
							   "W3C trace context that events written now carry, sent as their request's traceparent header.",
							   "Empty: the events carry none. SET LOCAL gives it to one transaction's events.",
							   &cocohooks_traceparent,
							   "",
							   PGC_USERSET,
							   0,
							   coco_check_traceparent, NULL, NULL);

	DefineCustomStringVariable("cocohooks.tracestate",
							   "W3C trace state sent as the tracestate header with cocohooks.traceparent.",
							   "Ignored while cocohooks.traceparent is empty.",
							   &cocohooks_tracestate,
							   "",
							   PGC_USERSET,
							   0,
							   coco_check_tracestate, NULL, NULL);

	DefineCustomBoolVariable("cocohooks.api_session",
							 "Marks this session as the application's API: its row changes fire hooks.",
							 "Writes from sessions where this is off (psql, migrations, batch jobs) fire nothing.",
							 &cocohooks_api_session,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.max_concurrent_deliveries",
							"Number of deliveries in progress above which the worker takes no more events.",
							"Bounds the worker's memory; beyond it, events wait in the shared queue.",
							&cocohooks_max_concurrent_deliveries,
							4096,
							1,
							65536,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.max_host_connections",
							"Maximum number of connections the worker opens to one host and port.",
							"Deliveries beyond it wait for a free connection to that receiver; other receivers are not held back.",
							&cocohooks_max_host_connections,
							32,
							1,
							1024,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.max_host_streams",
							"Maximum number of requests the worker has in flight at once to one HTTP/2 host and port.",
							"They go as streams of at most 100 per connection, over at most cocohooks.max_host_connections connections; a receiver speaking HTTP/1.1 gets one request per connection.",
							&cocohooks_max_host_streams,
							1000,
							1,
							65536,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("cocohooks.http2",
							 "When deliveries use HTTP/2.",
							 "tls: with an https receiver that offers it (ALPN), else HTTP/1.1; off: always HTTP/1.1; prior_knowledge: also with http:// receivers, which must then speak HTTP/2 without being asked.",
							 &cocohooks_http2,
							 COCO_HTTP2_TLS,
							 http2_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.retry_max_backoff",
							"Longest wait before a retry of a failed delivery.",
							"Retries wait about 1 s, then twice as long each time, up to this or, once the event has failed for longer, up to a quarter of the time since its commit (at most 6 h); a Retry-After answer is honoured up to the same limit.",
							&cocohooks_retry_max_backoff,
							60000,
							1000,
							3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.disable_failing_hooks_after",
							"Disables a hook when none of its deliveries succeeded for this long.",
							"Counted from its first failed attempt after its last successful delivery; its waiting deliveries are logged as failed, with their payload. 0 never disables.",
							&cocohooks_disable_failing_hooks_after,
							5 * 24 * 3600 * 1000,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("cocohooks.log_deliveries",
							 "Which finished deliveries are written to cocohooks.deliveries.",
							 "failures: failed ones only; all: every delivery; none: nothing (failures still reach the server log).",
							 &cocohooks_log_deliveries,
							 COCO_LOG_FAILURES,
							 log_deliveries_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.max_wal_retention",
							"WAL kept for events not yet finished, at most.",
							"Past it, the oldest waiting events are given up and logged as failed with their payload. -1: no limit.",
							&cocohooks_max_wal_retention,
							10 * 1024,
							-1,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.log_retention",
							"How long rows of successful deliveries stay in cocohooks.deliveries.",
							"The worker deletes older rows in small batches; 0 keeps them forever. Failed deliveries follow cocohooks.log_retention_failed.",
							&cocohooks_log_retention,
							7 * 24 * 60,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.log_retention_failed",
							"How long rows of failed deliveries stay in cocohooks.deliveries.",
							"redeliver() and redeliver_failed() need them; the worker deletes older rows in small batches; 0 keeps them forever.",
							&cocohooks_log_retention_failed,
							30 * 24 * 60,
							0,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomIntVariable("cocohooks.log_failures_every",
							"How often the server log sums up the failed attempts of a failing hook.",
							"A hook's first failure after a success gets its own line; then one line per hook at most this often counts the failed attempts, until a success, which gets a line too. 0: a line per failed attempt.",
							&cocohooks_log_failures_every,
							60,
							0,
							24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("cocohooks.ca_file",
							   "PEM file of certificate authorities trusted for HTTPS deliveries, besides the system's.",
							   NULL,
							   &cocohooks_ca_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);
}

void
coco_require_preload(void)
{
	if (!coco_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cocohooks must be loaded via \"shared_preload_libraries\""),
				 errdetail("Its background worker and shared-memory queue are created at server start."),
				 errhint("Add cocohooks to \"shared_preload_libraries\" in postgresql.conf and restart the server.")));
}

/*
 * Defines the settings: all of them when the postmaster preloads the
 * library, else only those a session may set.
 */
void
coco_settings_define(void)
{
	if (process_shared_preload_libraries_in_progress)
		define_server_start_settings();
	define_settings();
}
