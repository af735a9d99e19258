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

bool		cocohooks_api_session = false;
char	   *cocohooks_database = NULL;
int			cocohooks_queue_size = 64 * 1024;	/* kB */
int			cocohooks_max_databases = 16;
int			cocohooks_max_hook_stats = 1000;
int			cocohooks_max_concurrent_deliveries = 4096;
int			cocohooks_max_host_connections = 32;
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

/* ----
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the values are
 * checked when set, so what an event carries can go into a request header
 * as it is (no control characters, bounded lengths).
 * ----
 */

/* true when the n characters at s are lowercase hex digits; *zero: all '0' */
static bool
lower_hex(const char *s, int n, bool *zero)
{
	*zero = true;
	for (int i = 0; i < n; i++)
	{
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		if (s[i] != '0')
			*zero = false;
	}
	return true;
}

/*
 * traceparent: version "-" trace-id "-" parent-id "-" flags, 2, 32, 16 and
 * 2 lowercase hex digits.  A version above 00 may add fields after the
 * flags; we accept such a version only in the form of 00 (55 characters),
 * so what an event carries stays bounded.
 */
static bool
check_traceparent(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	bool		zero;
	bool		trace_zero = false;
	bool		parent_zero = false;

	if (v == NULL || v[0] == '\0')
		return true;
	if (strlen(v) < COCO_TRACEPARENT_LEN ||
		v[2] != '-' || v[35] != '-' || v[52] != '-' ||
		!lower_hex(v, 2, &zero) || !lower_hex(v + 3, 32, &trace_zero) ||
		!lower_hex(v + 36, 16, &parent_zero) || !lower_hex(v + 53, 2, &zero))
	{
		GUC_check_errdetail("A traceparent is a version, a trace-id, a parent-id and flags of 2, 32, 16 and 2 lowercase hexadecimal digits, separated by \"-\".");
		GUC_check_errhint("For example: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.");
		return false;
	}
	if (strncmp(v, "ff", 2) == 0)
	{
		GUC_check_errdetail("Version ff is invalid.");
		return false;
	}
	if (trace_zero)
	{
		GUC_check_errdetail("The trace-id must not be all zeros.");
		return false;
	}
	if (parent_zero)
	{
		GUC_check_errdetail("The parent-id must not be all zeros.");
		return false;
	}
	if (strlen(v) != COCO_TRACEPARENT_LEN)
	{
		if (strncmp(v, "00", 2) == 0)
			GUC_check_errdetail("A traceparent of version 00 has exactly %d characters.",
								COCO_TRACEPARENT_LEN);
		else
			GUC_check_errdetail("cocohooks accepts a traceparent of a version above 00 only in the form of version 00, %d characters long.",
								COCO_TRACEPARENT_LEN);
		return false;
	}
	return true;
}

/* a key's characters after its first: lowercase letters, digits, _ - * / */
static bool
key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '-' || c == '*' || c == '/';
}

/* simple-key, or multi-tenant-key tenant-id "@" system-id */
static bool
tracestate_key_valid(const char *k, int len)
{
	const char *at = memchr(k, '@', len);
	int			tenant_len = at ? at - k : len;

	if (tenant_len < 1 || tenant_len > (at ? 241 : 256))
		return false;
	if (!((k[0] >= 'a' && k[0] <= 'z') || (at && k[0] >= '0' && k[0] <= '9')))
		return false;
	for (int i = 1; i < tenant_len; i++)
		if (!key_char(k[i]))
			return false;
	if (at)
	{
		const char *sys = at + 1;
		int			sys_len = len - tenant_len - 1;

		if (sys_len < 1 || sys_len > 14 || !(sys[0] >= 'a' && sys[0] <= 'z'))
			return false;
		for (int i = 1; i < sys_len; i++)
			if (!key_char(sys[i]))
				return false;
	}
	return true;
}

/* 1 to 256 printable ASCII characters but "," and "=", not ending in a space */
static bool
tracestate_value_valid(const char *v, int len)
{
	if (len < 1 || len > 256 || v[len - 1] == ' ')
		return false;
	for (int i = 0; i < len; i++)
		if (v[i] < 0x20 || v[i] > 0x7E || v[i] == ',' || v[i] == '=')
			return false;
	return true;
}

/*
 * tracestate: up to 32 list members key=value, separated by commas and
 * optional spaces or tabs, with unique keys; empty members are allowed, as
 * the W3C grammar does.  At most 512 characters in all.
 */
static bool
check_tracestate(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	const char *keys[COCO_TRACESTATE_MAX_MEMBERS];
	int			key_lens[COCO_TRACESTATE_MAX_MEMBERS];
	int			nmembers = 0;
	const char *p;

	if (v == NULL || v[0] == '\0')
		return true;
	if (strlen(v) > COCO_TRACESTATE_MAX_LEN)
	{
		GUC_check_errdetail("A tracestate has at most %d characters.",
							COCO_TRACESTATE_MAX_LEN);
		return false;
	}
	for (p = v;; p++)
	{
		const char *end = p + strcspn(p, ",");
		const char *next = end;
		const char *eq;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (p < end)
		{
			if (nmembers == COCO_TRACESTATE_MAX_MEMBERS)
			{
				GUC_check_errdetail("A tracestate has at most %d list members.",
									COCO_TRACESTATE_MAX_MEMBERS);
				return false;
			}
			eq = memchr(p, '=', end - p);
			if (eq == NULL || !tracestate_key_valid(p, eq - p))
			{
				GUC_check_errdetail("List member \"%.*s\" does not start with a valid key and \"=\".",
									(int) (end - p), p);
				GUC_check_errhint("A key is a lowercase letter and up to 255 lowercase letters, digits, \"_\", \"-\", \"*\" and \"/\"; or a tenant-id of up to 241 of those (led by a letter or digit), \"@\" and a system-id of up to 14 (led by a letter). For example: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE.");
				return false;
			}
			if (!tracestate_value_valid(eq + 1, end - eq - 1))
			{
				GUC_check_errdetail("The value of list member \"%.*s\" is invalid.",
									(int) (eq - p), p);
				GUC_check_errhint("A value is 1 to 256 printable ASCII characters other than \",\" and \"=\", not ending in a space.");
				return false;
			}
			for (int i = 0; i < nmembers; i++)
				if (key_lens[i] == eq - p && memcmp(keys[i], p, eq - p) == 0)
				{
					GUC_check_errdetail("Key \"%.*s\" appears more than once.",
										(int) (eq - p), p);
					return false;
				}
			keys[nmembers] = p;
			key_lens[nmembers] = eq - p;
			nmembers++;
		}
		if (*next == '\0')
			break;
		p = next;
	}
	return true;
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
							   check_traceparent, NULL, NULL);

	DefineCustomStringVariable("cocohooks.tracestate",
							   "W3C trace state sent as the tracestate header with cocohooks.traceparent.",
							   "Ignored while cocohooks.traceparent is empty.",
							   &cocohooks_tracestate,
							   "",
							   PGC_USERSET,
							   0,
							   check_tracestate, NULL, NULL);

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
