/*-------------------------------------------------------------------------
 *
 * backfill_admin.c
 *	  The SQL functions that start and cancel backfills: backfill() and
 *	  cancel_backfill().
 *
 * A backfill sends the rows a post_save hook's collection already holds to
 * the hook.  These functions only check and record: a row of
 * cocohooks.backfill_jobs per backfill, which the database's worker reads
 * when told at commit (backfills_generation) and works through
 * (backfill_source.c).
 *
 * As with the hooks, callers need only own the collection; after checking
 * the arguments and ownership as the caller, the row is written as the
 * catalog's owner (as_owner.c).
 *
 * Runs in: backends.
 *
 * Invariants:
 *	- the hook's row is locked (FOR UPDATE) before its backfills are looked
 *	  at, so two backfill() calls of one hook cannot both start one;
 *	- the worker learns of a change when it commits, never before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/nodes.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "as_owner.h"
#include "cocohooks.h"
#include "filter_compile.h"
#include "hook_admin.h"
#include "hook_args.h"
#include "hook_cache.h"
#include "settings.h"
#include "worker_marks.h"

PG_FUNCTION_INFO_V1(cocohooks_backfill);
PG_FUNCTION_INFO_V1(cocohooks_cancel_backfill);

/* rows read per chunk: each chunk is held in the worker's memory */
#define MAX_BATCH_ROWS		10000

static bool wake_at_commit = false;
static bool callback_registered = false;

static void
wake_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				coco_marks_bump_backfills_generation();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction tells the worker nothing: it polls */
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/* The worker reads cocohooks.backfill_jobs again when this transaction commits. */
static void
wake_worker_at_commit(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(wake_callback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
}

/* The hook's event and its running backfill (0: none), as the catalog's owner. */
static CocoEventKind
hook_event_and_backfill(int64 hook_id, int64 *running, bool *enabled)
{
	Datum		args[1] = {Int64GetDatum(hook_id)};
	Oid			types[1] = {INT8OID};
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		value;

	if (SPI_execute_with_args("SELECT h.event, h.enabled, "
							  "(SELECT b.id FROM cocohooks.backfill_jobs b"
							  "  WHERE b.hook_id = h.id AND b.state = 'running')"
							  " FROM cocohooks.hooks h WHERE h.id = $1",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read hook %lld", (long long) hook_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*enabled = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	value = SPI_getbinval(tup, desc, 3, &isnull);
	*running = isnull ? 0 : DatumGetInt64(value);
	return coco_event_from_name(TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));
}

/*
 * A backfill reads its table in the order of the primary key, and names
 * each row's event by it: the table needs a key of one column, the one
 * that is the document_id of its events.
 */
static void
check_key(int64 hook_id, Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	CocoTableHooks *th = coco_hook_cache_lookup(rel, InvalidOid);

	if (th->pk_attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot backfill hook %lld", (long long) hook_id),
				 errdetail("Table \"%s\" has no primary key of one column.",
						   RelationGetRelationName(rel)),
				 errhint("A backfill reads the table in the order of its primary key.")));
	table_close(rel, AccessShareLock);
}

/*
 * backfill(hook_id, filter, batch_rows): starts sending every row of the
 * hook's collection that passes filter (and the hook's own filter) to the
 * hook, batch_rows rows read at a time.  Returns the backfill's id.
 */
Datum
cocohooks_backfill(PG_FUNCTION_ARGS)
{
	int64		hook_id;
	int32		batch_rows;
	char	   *filter_text = NULL;
	Node	   *filter = NULL;
	CocoAsOwner st;
	Oid			relid;
	CocoEventKind event;
	int64		running;
	bool		enabled;
	int64		id;
	bool		isnull;
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, INT4OID};

	coco_require_preload();
	coco_require_arg(fcinfo, 0, "hook_id");
	coco_require_arg(fcinfo, 2, "batch_rows");
	hook_id = PG_GETARG_INT64(0);
	batch_rows = PG_GETARG_INT32(2);
	coco_check_range("batch_rows", batch_rows, 1, MAX_BATCH_ROWS);
	if (!PG_ARGISNULL(1))
		filter_text = text_to_cstring(PG_GETARG_TEXT_PP(1));

	coco_begin_as_owner(&st);
	relid = coco_hook_collection_for_change(hook_id, &st);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("hook %lld does not exist", (long long) hook_id)));
	event = hook_event_and_backfill(hook_id, &running, &enabled);
	if (event != COCO_POST_SAVE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot backfill hook %lld", (long long) hook_id),
				 errdetail("Hook %lld is a %s hook; only post_save hooks are backfilled.",
						   (long long) hook_id, coco_event_names[event])));
	if (running != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("hook %lld already has a running backfill", (long long) hook_id),
				 errdetail("Backfill %lld is running.", (long long) running),
				 errhint("Wait for it to finish, or cancel it with cocohooks.cancel_backfill(%lld).",
						 (long long) running)));
	coco_end_as_owner(&st);

	/* as the caller, like a hook's own filter */
	check_key(hook_id, relid);
	if (filter_text != NULL)
		filter = coco_filter_compile(relid, COCO_POST_SAVE, filter_text);

	coco_begin_as_owner(&st);
	args[0] = Int64GetDatum(hook_id);
	args[1] = filter ? CStringGetTextDatum(coco_filter_deparse(filter, relid)) : (Datum) 0;
	args[2] = filter ? CStringGetTextDatum(nodeToString(filter)) : (Datum) 0;
	args[3] = Int32GetDatum(batch_rows);
	if (filter == NULL)
		nulls[1] = nulls[2] = 'n';
	if (SPI_execute_with_args("INSERT INTO cocohooks.backfill_jobs (hook_id, filter, filter_tree, batch_rows)"
							  " VALUES ($1, $2, $3, $4) RETURNING id",
							  4, types, args, nulls, false, 1) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not insert into cocohooks.backfill_jobs");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	coco_end_as_owner(&st);

	if (!enabled)
		ereport(NOTICE,
				(errmsg("hook %lld is disabled", (long long) hook_id),
				 errdetail("Backfill %lld waits until the hook is enabled.", (long long) id)));
	wake_worker_at_commit();
	PG_RETURN_INT64(id);
}

/*
 * cancel_backfill(backfill_id): no more rows are read; events already
 * handed to the worker's engine are still delivered.  False if the backfill
 * had already ended.
 */
Datum
cocohooks_cancel_backfill(PG_FUNCTION_ARGS)
{
	int64		id;
	CocoAsOwner st;
	Datum		args[1];
	Oid			types[1] = {INT8OID};
	bool		isnull;
	int64		hook_id;
	bool		running;

	coco_require_preload();
	coco_require_arg(fcinfo, 0, "backfill_id");
	id = PG_GETARG_INT64(0);
	args[0] = Int64GetDatum(id);

	coco_begin_as_owner(&st);
	if (SPI_execute_with_args("SELECT hook_id, state = 'running' FROM cocohooks.backfill_jobs WHERE id = $1",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.backfill_jobs");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("backfill %lld does not exist", (long long) id)));
	hook_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* checks ownership, and locks the hook as backfill() does */
	(void) coco_hook_collection_for_change(hook_id, &st);
	if (SPI_execute_with_args("UPDATE cocohooks.backfill_jobs"
							  " SET state = 'cancelled', updated_at = now(), finished_at = now()"
							  " WHERE id = $1 AND state = 'running'",
							  1, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update cocohooks.backfill_jobs");
	running = SPI_processed == 1;
	coco_end_as_owner(&st);
	if (running)
		wake_worker_at_commit();
	PG_RETURN_BOOL(running);
}
