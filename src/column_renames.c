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
 * included), in the same transaction as the rename.  Catalog changes
 * refresh every backend's hook cache (hooks_changed).
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

#include "as_owner.h"

PG_FUNCTION_INFO_V1(cocohooks_follow_column_renames);

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
	coco_end_as_owner(&st);
	PG_RETURN_VOID();
}
