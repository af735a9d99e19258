/*-------------------------------------------------------------------------
 *
 * hook_triggers.c
 *	  The row triggers a collection's hooks need, kept in step with the
 *	  catalog.
 *
 * Each collection has at most two triggers calling cocohooks.row_trigger():
 * a BEFORE one for its pre_* hooks and an AFTER one for its post_* hooks,
 * covering just the operations those hooks need.  coco_sync_triggers()
 * makes them match the catalog after every change, and drops them when no
 * hook is left.
 *
 * A pre_* document must show the row as every other BEFORE trigger left
 * it, whatever their names and whatever the encoding.  Triggers fire in
 * name order; ours are named "~cocohooks_pre" and "~cocohooks_post", which
 * sort after every name of letters, digits and '_'.  When a BEFORE row
 * trigger's name sorts after ours anyway (it begins with a later
 * character: any non-ASCII letter, say), the AFTER trigger also covers
 * that operation, and the row trigger sends its pre_* events from there,
 * with the row as stored (row_trigger.c).  The same goes for a table with
 * stored generated columns, which PostgreSQL computes after every BEFORE
 * trigger.  An event trigger syncs again after every CREATE TRIGGER, ALTER
 * TRIGGER and ALTER TABLE on a hooked table.
 *
 * Runs in: backends (register_hook and unregister_hook, hook_admin.c; the
 * ddl_command_end event trigger).
 *
 * Invariants:
 *	- it runs as the catalog's owner, inside SPI (as_owner.c), in the
 *	  caller's transaction: the triggers and the catalog change together;
 *	- the event trigger does not recurse into our own CREATE and DROP
 *	  TRIGGER (syncing, reset on error too);
 *	- the event trigger changes only the AFTER trigger, and only once the
 *	  BEFORE one exists, so that a restore can create both itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "as_owner.h"
#include "cocohooks.h"
#include "hook_triggers.h"

PG_FUNCTION_INFO_V1(cocohooks_sync_hook_triggers);

/*
 * ASCII, so the same in every database encoding and readable from every
 * client encoding; '~' sorts after letters, digits and '_' (see below for
 * names that sort later still).
 */
#define PRE_TRIGGER_NAME	"~cocohooks_pre"
#define POST_TRIGGER_NAME	"~cocohooks_post"

static bool syncing = false;

/*
 * Operations of the BEFORE row triggers, other than ours, whose names sort
 * after our BEFORE trigger's on the table or any of its partitions:
 * triggers fire in name order, so these see the row after ours does.
 */
static int16
later_before_ops(Oid relid)
{
	Datum		args[2] = {ObjectIdGetDatum(relid), CStringGetDatum(PRE_TRIGGER_NAME)};
	Oid			types[2] = {OIDOID, CSTRINGOID};
	bool		isnull;
	int32		ops;

	if (SPI_execute_with_args("SELECT pg_catalog.bit_or(t.tgtype::pg_catalog.int4) "
							  "FROM pg_catalog.pg_trigger t "
							  "WHERE (t.tgrelid = $1 OR t.tgrelid IN "
							  "(SELECT relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass))) "
							  "AND NOT t.tgisinternal "
							  "AND t.tgfoid <> 'cocohooks.row_trigger()'::pg_catalog.regprocedure "
							  "AND (t.tgtype & 3) = 3 "	/* ROW and BEFORE */
							  "AND t.tgname > $2::pg_catalog.name",
							  2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read triggers");
	ops = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
		return 0;
	return (int16) (ops & (TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE));
}

/*
 * INSERT and UPDATE if the table or a partition has a stored generated
 * column: PostgreSQL computes those after every BEFORE trigger, so only
 * the row as stored shows them.
 */
static int16
generated_ops(Oid relid)
{
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	Oid			types[1] = {OIDOID};
	bool		isnull;

	if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a "
							  "WHERE (a.attrelid = $1 OR a.attrelid IN "
							  "(SELECT relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass))) "
							  "AND a.attgenerated = 's' AND NOT a.attisdropped)",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read columns");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) ?
		(TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE) : 0;
}

/* Current operations (TRIGGER_TYPE_* bits) of one of our triggers, or 0. */
static int16
existing_trigger_ops(Oid relid, const char *name)
{
	Datum		args[2] = {ObjectIdGetDatum(relid), CStringGetDatum(name)};
	Oid			types[2] = {OIDOID, CSTRINGOID};
	int16		ops = 0;

	if (SPI_execute_with_args("SELECT tgtype, tgparentid <> 0 FROM pg_catalog.pg_trigger "
							  "WHERE tgrelid = $1 AND tgname = $2::pg_catalog.name",
							  2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read triggers");
	if (SPI_processed == 1)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 2, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("collection \"%s\" is a partition of a table that has hooks",
							get_rel_name(relid)),
					 errdetail("The hooks of a partitioned table already fire for the rows of its partitions."),
					 errhint("Register the hook on the partitioned table.")));

		ops = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
		ops &= (TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE);
		if (ops == 0)
			ops = -1;			/* exists, but not as we would make it */
	}
	return ops;
}

static void
set_trigger(Oid relid, const char *name, bool before, int16 want)
{
	int16		have = existing_trigger_ops(relid, name);
	char	   *qualified;
	StringInfoData sql;

	if (have == want)
		return;

	qualified = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										   get_rel_name(relid));
	initStringInfo(&sql);
	if (have != 0)
	{
		appendStringInfo(&sql, "DROP TRIGGER %s ON %s",
						 quote_identifier(name), qualified);
		if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not drop trigger");
	}
	if (want == 0)
		return;

	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRIGGER %s %s ", quote_identifier(name),
					 before ? "BEFORE" : "AFTER");
	if (want & TRIGGER_TYPE_INSERT)
		appendStringInfoString(&sql, "INSERT OR ");
	if (want & TRIGGER_TYPE_UPDATE)
		appendStringInfoString(&sql, "UPDATE OR ");
	if (want & TRIGGER_TYPE_DELETE)
		appendStringInfoString(&sql, "DELETE OR ");
	sql.len -= 4;				/* the last " OR " */
	sql.data[sql.len] = '\0';
	appendStringInfo(&sql, " ON %s FOR EACH ROW EXECUTE FUNCTION cocohooks.row_trigger()",
					 qualified);
	if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not create trigger");
}

/* The operations the collection's hooks need, before and after the row change. */
static void
needed_ops(Oid relid, int16 *pre, int16 *post)
{
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	Oid			types[1] = {OIDOID};

	*pre = 0;
	*post = 0;
	if (SPI_execute_with_args("SELECT DISTINCT event FROM cocohooks.hooks "
							  "WHERE collection = $1::pg_catalog.regclass",
							  1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.hooks");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *event = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		switch (coco_event_from_name(event))
		{
			case COCO_PRE_SAVE:
				*pre |= TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE;
				break;
			case COCO_PRE_DELETE:
				*pre |= TRIGGER_TYPE_DELETE;
				break;
			case COCO_POST_SAVE:
				*post |= TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE;
				break;
			case COCO_POST_DELETE:
				*post |= TRIGGER_TYPE_DELETE;
				break;
			default:
				break;
		}
	}
	/*
	 * pre_* events of operations another BEFORE trigger sees after ours, or
	 * whose stored generated columns are computed after ours, go out AFTER
	 */
	*post |= *pre & (later_before_ops(relid) | generated_ops(relid));
}

/* Makes the collection's triggers match its hooks.  Runs as owner, in SPI. */
void
coco_sync_triggers(Oid relid)
{
	int16		pre;
	int16		post;

	needed_ops(relid, &pre, &post);
	syncing = true;
	PG_TRY();
	{
		set_trigger(relid, PRE_TRIGGER_NAME, true, pre);
		set_trigger(relid, POST_TRIGGER_NAME, false, post);
	}
	PG_FINALLY();
	{
		syncing = false;
	}
	PG_END_TRY();
}

/*
 * After trigger DDL on a collection: only the AFTER trigger's coverage of
 * pre_* events may change, and only once the BEFORE trigger exists.  A
 * restore (pg_restore) creates the hook triggers itself, the AFTER one
 * first (its name sorts first), with the hooks already in the catalog:
 * creating a missing trigger here would make its CREATE TRIGGER fail.
 */
static void
sync_after_trigger(Oid relid)
{
	int16		pre;
	int16		post;

	if (existing_trigger_ops(relid, PRE_TRIGGER_NAME) == 0)
		return;
	needed_ops(relid, &pre, &post);
	syncing = true;
	PG_TRY();
	{
		set_trigger(relid, POST_TRIGGER_NAME, false, post);
	}
	PG_FINALLY();
	{
		syncing = false;
	}
	PG_END_TRY();
}

/*
 * Trigger DDL (CREATE TRIGGER, ALTER TRIGGER ... RENAME) may put a BEFORE
 * trigger after ours, or take it away, and ALTER TABLE may add or drop a
 * stored generated column: the collections of the tables it touched get
 * their triggers synced again.  An event trigger on
 * ddl_command_end; our own trigger changes do not recurse.
 */
Datum
cocohooks_sync_hook_triggers(PG_FUNCTION_ARGS)
{
	CocoAsOwner st;
	Oid		   *relids;
	uint64		n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cocohooks.sync_hook_triggers() was not called by the event trigger manager")));
	if (syncing)
		PG_RETURN_VOID();

	coco_begin_as_owner(&st);
	if (SPI_execute("SELECT DISTINCT h.collection::pg_catalog.oid "
					"FROM (SELECT t.tgrelid AS relid "
					"FROM pg_catalog.pg_event_trigger_ddl_commands() c "
					"JOIN pg_catalog.pg_trigger t ON t.oid = c.objid "
					"WHERE c.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass "
					"UNION SELECT c.objid "
					"FROM pg_catalog.pg_event_trigger_ddl_commands() c "
					"WHERE c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
					"AND c.command_tag = 'ALTER TABLE') r "
					"JOIN cocohooks.hooks h ON h.collection::pg_catalog.oid = r.relid "
					"OR h.collection::pg_catalog.oid IN "
					"(SELECT relid FROM pg_catalog.pg_partition_ancestors(r.relid))",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the commands of the event");
	n = SPI_processed;
	relids = palloc(sizeof(Oid) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		relids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
												   SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (uint64 i = 0; i < n; i++)
		sync_after_trigger(relids[i]);
	coco_end_as_owner(&st);
	PG_RETURN_VOID();
}
