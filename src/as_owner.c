/*-------------------------------------------------------------------------
 *
 * as_owner.c
 *	  Changes to the hook catalog made as its owner.
 *
 * Callers of the hook functions need only own the collection; the catalog
 * itself is writable by the extension's owner alone.  Once the caller's
 * rights are checked, the catalog change and the collection's triggers are
 * made as the owner of cocohooks.hooks: a security-restricted user switch
 * with a safe search_path, as REFRESH MATERIALIZED VIEW does, around an
 * SPI connection.
 *
 * Runs in: backends (the hook functions, the ALTER TABLE event trigger).
 *
 * Invariants: every coco_begin_as_owner() is paired with
 * coco_end_as_owner() on success; on error the transaction's abort undoes
 * the user switch, the GUC nest level and SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "as_owner.h"

/* Oid of cocohooks.hooks; errors if the extension is not installed here. */
Oid
coco_hooks_catalog(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", false);
	Oid			relid = get_relname_relid("hooks", nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cocohooks is not installed in this database"),
				 errhint("Run CREATE EXTENSION cocohooks.")));
	return relid;
}

/* Becomes the owner of the catalog for the catalog change; connects SPI. */
void
coco_begin_as_owner(CocoAsOwner *st)
{
	Oid			owner;
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(coco_hooks_catalog()));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for cocohooks.hooks");
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&st->save_userid, &st->save_sec_context);
	SetUserIdAndSecContext(owner, st->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	st->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
coco_end_as_owner(CocoAsOwner *st)
{
	SPI_finish();
	AtEOXact_GUC(true, st->save_nestlevel);
	SetUserIdAndSecContext(st->save_userid, st->save_sec_context);
}
