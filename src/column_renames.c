/*-------------------------------------------------------------------------
 *
 * column_renames.c
 *	  Hooks follow ALTER TABLE ... RENAME COLUMN of their collection.
 *
 * A hook names columns (columns, exclude_columns), and names are what a
 * dump restores.  Without this, renaming a column a hook leaves out of its
 * payloads (a password hash) would put it back into them under its new
 * name, and a column filter would stop matching.  An event trigger on
 * ddl_command_end replaces the old name by the new one in the hooks of the
 * renamed table and of every table that inherits the column (partitions
 * included), in the same transaction as the rename.  A row filter's tree
 * numbers its columns and needs no change, but its text, which a dump
 * keeps, is written again from the tree (filter_compile.c).  Catalog
 * changes refresh every backend's hook cache (hooks_changed).
 *
 * Runs in: backends (the ddl_command_end event trigger on ALTER TABLE).
 *
 * Invariants:
 *	- the table is resolved as the command resolved it, before the switch
 *	  to the catalog's owner (as_owner.c) changes the search_path;
 *	- the hooks change in the rename's own transaction: a rolled-back
 *	  rename leaves them as they were, and an error here fails the ALTER
 *	  TABLE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "as_owner.h"
#include "filter_compile.h"

PG_FUNCTION_INFO_V1(cocohooks_follow_column_renames);

/*
 * A filter's tree names columns by number and follows the rename by itself;
 * its text, which a dump keeps, is written again from the tree (the
 * catalog's trigger then compiles the new text, to the same tree).
 */
static void
rewrite_filter_texts(Datum relids)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Oid			relids_type = OIDARRAYOID;
	SPITupleTable *found;
	uint64		n;

	/* a catalog not yet updated to 0.3.0 has no filters */
	if (get_attnum(coco_hooks_catalog(), "filter_tree") == InvalidAttrNumber)
		return;
	if (SPI_execute_with_args("SELECT id, collection::pg_catalog.oid, filter_tree, filter "
							  "FROM cocohooks.hooks "
							  "WHERE collection::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
							  "AND filter_tree IS NOT NULL",
							  1, &relids_type, &relids, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the filters of renamed columns' hooks");
	found = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = found->vals[i];
		bool		isnull;
		Datum		args[2];
		char	   *source;

		args[0] = SPI_getbinval(tup, found->tupdesc, 1, &isnull);
		source = coco_filter_source(SPI_getvalue(tup, found->tupdesc, 3),
									DatumGetObjectId(SPI_getbinval(tup, found->tupdesc, 2, &isnull)));
		if (source == NULL || strcmp(source, SPI_getvalue(tup, found->tupdesc, 4)) == 0)
			continue;
		args[1] = CStringGetTextDatum(source);
		if (SPI_execute_with_args("UPDATE cocohooks.hooks SET filter = $2 "
								  "WHERE id OPERATOR(pg_catalog.=) $1",
								  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not rewrite the filter of hook %lld",
				 (long long) DatumGetInt64(args[0]));
	}
}

Datum
cocohooks_follow_column_renames(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	RenameStmt *stmt;
	Oid			relid;
	List	   *family;
	Datum	   *oids;
	int			n = 0;
	ListCell   *lc;
	CocoAsOwner st;
	Oid			types[3] = {OIDARRAYOID, TEXTOID, TEXTOID};
	Datum		args[3];

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cocohooks.follow_column_renames() was not called by the event trigger manager")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, RenameStmt))
		PG_RETURN_VOID();
	stmt = (RenameStmt *) trigdata->parsetree;
	if (stmt->renameType != OBJECT_COLUMN || stmt->relationType != OBJECT_TABLE ||
		stmt->relation == NULL)
		PG_RETURN_VOID();

	/* resolved as the command did: before the search_path is changed below */
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		PG_RETURN_VOID();
	family = find_all_inheritors(relid, NoLock, NULL);
	oids = palloc(sizeof(Datum) * list_length(family));
	foreach(lc, family)
		oids[n++] = ObjectIdGetDatum(lfirst_oid(lc));

	args[0] = PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	args[1] = CStringGetTextDatum(stmt->subname);
	args[2] = CStringGetTextDatum(stmt->newname);
	coco_begin_as_owner(&st);
	if (SPI_execute_with_args("UPDATE cocohooks.hooks SET "
							  "columns = pg_catalog.array_replace(columns, $2, $3), "
							  "exclude_columns = pg_catalog.array_replace(exclude_columns, $2, $3) "
							  "WHERE collection::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) "
							  "AND ($2 OPERATOR(pg_catalog.=) ANY (columns) "
							  "OR $2 OPERATOR(pg_catalog.=) ANY (exclude_columns))",
							  3, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not rename a column in the hooks of table %u", relid);
	rewrite_filter_texts(args[0]);
	coco_end_as_owner(&st);
	PG_RETURN_VOID();
}
