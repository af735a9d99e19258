/*-------------------------------------------------------------------------
 *
 * redeliver.c
 *	  cocohooks.redeliver(delivery_id) and cocohooks.redeliver_failed(hook_id,
 *	  since, until): logged deliveries sent again.
 *
 * The delivery log keeps the payload of failed deliveries (of all of them
 * with log_deliveries = 'all').  Both functions queue such a payload again
 * for the same hook, under the same webhook-id and with the same body text,
 * so a receiver that processed it after all recognises it.  The hook's
 * current URL, headers, secret, timeout and retries apply.  Like post_*
 * events, a redelivery is queued when the calling transaction commits.
 * The log keeps no trace context, so a redelivery sends no traceparent,
 * whatever the event or the calling session had.
 *
 * redeliver() sends one log row.  redeliver_failed() sends every event of
 * a hook whose delivery failed for good within a time range (on
 * finished_at: what failed during an incident, however old its event),
 * once each, in the order the events were first queued, except those the
 * log shows delivered to the hook after all.  It reads the log through a
 * cursor and holds one row at a time: a range may hold millions.
 *
 * Runs in: backends (the SQL functions).
 *
 * Invariants:
 *	- the log rows and the hook are read as the catalog's owner, but the
 *	  caller must own the hook's collection, as for the hook itself; the
 *	  hook's row stays locked (FOR UPDATE) until the transaction ends, so
 *	  the settings version the redeliveries name is its current one;
 *	- an event keeps its id (the webhook-id less its "_<hook id>") and its
 *	  body text, built again from the stored jsonb (payload.c);
 *	- it is sent outside any document order (COCO_REF_UNORDERED), and
 *	  only if the calling transaction commits (event_emit.c);
 *	- what waits for the commit is bounded there: in wal mode each
 *	  redelivery is a WAL record and nothing is held, in memory mode the
 *	  messages go to a temporary file past work_mem (pending_events.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "as_owner.h"
#include "cocohooks.h"
#include "event_emit.h"
#include "event_message.h"
#include "hook_admin.h"
#include "hook_args.h"
#include "payload.h"
#include "settings.h"

PG_FUNCTION_INFO_V1(cocohooks_redeliver);
PG_FUNCTION_INFO_V1(cocohooks_redeliver_failed);

/* rows fetched from redeliver_failed()'s cursor at a time */
#define FETCH_ROWS	100

/* The hook deliveries are sent again to, as a message names it. */
typedef struct RedeliveryHook
{
	int64		hook_id;
	Oid			relid;			/* its collection */
	char		suffix[32];		/* "_<hook id>", which ends its webhook-ids */
	StringInfoData ref;			/* its reference in a message */
} RedeliveryHook;

/*
 * The columns of a log row that queue_again() reads, first in both
 * functions' queries.
 */
#define LOG_ROW_COLUMNS "d.event, d.collection, d.document_id, d.payload, d.webhook_id"
enum
{
	COL_EVENT = 1, COL_COLLECTION, COL_DOCUMENT_ID, COL_PAYLOAD, COL_WEBHOOK_ID,
	COL_NEXT
};

static char *
text_col(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Finds the hook as the catalog's owner (in SPI, st) and locks its row;
 * false if there is no such hook.  An ERROR unless the caller owns its
 * collection.  hook->ref is allocated in SPI's memory.
 */
static bool
open_hook(int64 hook_id, CocoAsOwner *st, RedeliveryHook *hook)
{
	Datum		args[1] = {Int64GetDatum(hook_id)};
	Oid			types[1] = {INT8OID};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		version;

	hook->relid = coco_hook_collection_for_change(hook_id, st);
	if (!OidIsValid(hook->relid))
		return false;
	hook->hook_id = hook_id;
	snprintf(hook->suffix, sizeof(hook->suffix), "_%lld", (long long) hook_id);

	/* settings_version is NULL before ALTER EXTENSION UPDATE to 0.3.0 */
	if (SPI_execute_with_args("SELECT h.url, h.headers, h.secret, h.timeout_ms, h.max_retries, "
							  "       (pg_catalog.to_jsonb(h) OPERATOR(pg_catalog.->>) 'settings_version')::pg_catalog.int4 "
							  "FROM cocohooks.hooks h WHERE h.id = $1",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read cocohooks.hooks");
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	initStringInfo(&hook->ref);
	version = SPI_getbinval(tup, desc, 6, &isnull);
	/* sent when asked: an old state has no place in a document's order */
	if (!isnull)
		coco_hook_ref_append(&hook->ref, hook_id, (uint32) DatumGetInt32(version), true);
	else
	{
		/* an older catalog: the message carries the settings */
		bool		hnull;
		Datum		headers = SPI_getbinval(tup, desc, 2, &hnull);
		bool		rnull;
		Datum		retries = SPI_getbinval(tup, desc, 5, &rnull);

		coco_hook_spec_append(&hook->ref, hook_id, text_col(tup, desc, 1),
							  hnull ? NULL : DatumGetJsonbPCopy(headers),
							  text_col(tup, desc, 3),
							  DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull)),
							  rnull ? COCO_RETRIES_UNLIMITED : DatumGetInt32(retries),
							  0);
	}
	return true;
}

/*
 * Queues one logged delivery again for hook, from its log row (tup, desc:
 * LOG_ROW_COLUMNS first), whose payload is not NULL.  Allocates in the
 * current memory context; an ERROR for a row the log could not have
 * written.
 */
static void
queue_again(RedeliveryHook *hook, HeapTuple tup, TupleDesc desc)
{
	char	   *event = text_col(tup, desc, COL_EVENT);
	char	   *collection = text_col(tup, desc, COL_COLLECTION);
	char	   *document_id = text_col(tup, desc, COL_DOCUMENT_ID);
	char	   *webhook_id = text_col(tup, desc, COL_WEBHOOK_ID);
	bool		isnull;
	Datum		stored = SPI_getbinval(tup, desc, COL_PAYLOAD, &isnull);
	int			kind = coco_event_from_name(event);
	size_t		len = strlen(webhook_id);
	size_t		suffix_len = strlen(hook->suffix);
	char	   *payload;
	StringInfoData docid_json;
	StringInfoData message;

	Assert(!isnull);
	if (kind < 0)
		elog(ERROR, "unexpected event \"%s\" in cocohooks.deliveries", event);
	payload = coco_body_from_jsonb(DatumGetJsonbP(stored), (CocoEventKind) kind);

	/* the webhook-id is "<event id>_<hook id>": keep the event id */
	if (len > suffix_len && strcmp(webhook_id + len - suffix_len, hook->suffix) == 0)
		webhook_id[len - suffix_len] = '\0';
	if (strlen(webhook_id) > COCO_MAX_EVENT_ID_LEN)
		webhook_id[COCO_MAX_EVENT_ID_LEN] = '\0';

	initStringInfo(&docid_json);
	if (document_id)
		escape_json(&docid_json, document_id);
	else
		appendStringInfoString(&docid_json, "null");

	initStringInfo(&message);
	coco_message_append(&message, (CocoEventKind) kind, hook->relid,
						hook->ref.data, hook->ref.len, 1,
						collection, strlen(collection),
						docid_json.data, docid_json.len,
						webhook_id, 0, 0,
						NULL, NULL,	/* the log keeps no trace */
						payload, strlen(payload));
	coco_emit_redelivery(message.data, message.len);
}

Datum
cocohooks_redeliver(PG_FUNCTION_ARGS)
{
	int64		delivery_id;
	CocoAsOwner st;
	Datum		args[1];
	Oid			types[1] = {INT8OID};
	SPITupleTable *row;
	bool		isnull;
	int64		hook_id;
	RedeliveryHook hook;

	coco_require_preload();
	coco_require_arg(fcinfo, 0, "delivery_id");
	delivery_id = PG_GETARG_INT64(0);
	args[0] = Int64GetDatum(delivery_id);

	coco_begin_as_owner(&st);
	if (SPI_execute_with_args("SELECT " LOG_ROW_COLUMNS ", d.hook_id "
							  "FROM cocohooks.deliveries d WHERE d.id = $1",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.deliveries");
	if (SPI_processed == 0)
	{
		coco_end_as_owner(&st);
		PG_RETURN_BOOL(false);
	}
	/* kept until SPI_finish, whatever open_hook() runs */
	row = SPI_tuptable;
	hook_id = DatumGetInt64(SPI_getbinval(row->vals[0], row->tupdesc, COL_NEXT, &isnull));

	if (!open_hook(hook_id, &st, &hook))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("hook %lld of delivery %lld no longer exists",
						(long long) hook_id, (long long) delivery_id),
				 errdetail("A delivery is sent again to its own hook, which was unregistered.")));
	(void) SPI_getbinval(row->vals[0], row->tupdesc, COL_PAYLOAD, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("delivery %lld has no stored payload", (long long) delivery_id),
				 errdetail("Payloads are kept for failed deliveries, and for all deliveries while \"%s\" is \"all\".",
						   "cocohooks.log_deliveries")));
	queue_again(&hook, row->vals[0], row->tupdesc);
	coco_end_as_owner(&st);

	PG_RETURN_BOOL(true);
}

/*
 * The failed deliveries of hook $1 that finished in [$2, $3], one row per
 * event (the first), in the order the events were queued; not those the
 * log shows delivered to the hook after all (with log_deliveries = 'all':
 * a successful redelivery, or a success before the failure).  Sorted by
 * the executor, which spills past work_mem.
 */
#define FAILED_IN_RANGE \
	"SELECT " LOG_ROW_COLUMNS " FROM (" \
	"  SELECT DISTINCT ON (f.webhook_id) f.* FROM cocohooks.deliveries f " \
	"  WHERE f.hook_id = $1 AND NOT f.success AND f.payload IS NOT NULL " \
	"    AND f.finished_at >= $2 AND f.finished_at <= $3 " \
	"    AND NOT EXISTS (SELECT 1 FROM cocohooks.deliveries s " \
	"                    WHERE s.hook_id = $1 AND s.webhook_id = f.webhook_id AND s.success) " \
	"  ORDER BY f.webhook_id, f.queued_at, f.id) d " \
	"ORDER BY d.queued_at, d.id"

Datum
cocohooks_redeliver_failed(PG_FUNCTION_ARGS)
{
	int64		hook_id;
	TimestampTz since;
	TimestampTz until;
	CocoAsOwner st;
	RedeliveryHook hook;
	Datum		args[3];
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Portal		portal;
	MemoryContext row_cxt;
	MemoryContext old;
	int64		queued = 0;

	coco_require_preload();
	coco_require_arg(fcinfo, 0, "hook_id");
	coco_require_arg(fcinfo, 1, "since");
	coco_require_arg(fcinfo, 2, "until");
	hook_id = PG_GETARG_INT64(0);
	since = PG_GETARG_TIMESTAMPTZ(1);
	until = PG_GETARG_TIMESTAMPTZ(2);
	if (since > until)
	{
		/* timestamptz_to_str() returns a static buffer */
		char	   *since_text = pstrdup(timestamptz_to_str(since));
		char	   *until_text = pstrdup(timestamptz_to_str(until));

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must not be later than until"),
				 errdetail("since is %s, until is %s.", since_text, until_text)));
	}
	args[0] = Int64GetDatum(hook_id);
	args[1] = TimestampTzGetDatum(since);
	args[2] = TimestampTzGetDatum(until);

	/* what one row needs, freed after it */
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "cocohooks redelivery",
									ALLOCSET_DEFAULT_SIZES);
	coco_begin_as_owner(&st);
	if (!open_hook(hook_id, &st, &hook))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("hook %lld does not exist", (long long) hook_id)));

	portal = SPI_cursor_open_with_args(NULL, FAILED_IN_RANGE, 3, types, args, NULL,
									   false, CURSOR_OPT_NO_SCROLL);
	for (;;)
	{
		SPITupleTable *batch;
		uint64		n;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		batch = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		for (uint64 i = 0; i < n; i++)
		{
			old = MemoryContextSwitchTo(row_cxt);
			queue_again(&hook, batch->vals[i], batch->tupdesc);
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
			queued++;
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	coco_end_as_owner(&st);
	MemoryContextDelete(row_cxt);

	PG_RETURN_INT64(queued);
}
