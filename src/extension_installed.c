/*-------------------------------------------------------------------------
 *
 * extension_installed.c
 *	  Whether the extension is installed in this database, read from the
 *	  catalog itself.
 *
 * Runs in the worker: as it starts, and when a backend tells it the
 * extension was created or dropped (extension_watch.c).  Starts and
 * commits a transaction of its own, so it is called outside one; the
 * caller's memory context is current again on return.
 *
 * Invariants: reads pg_extension with a fresh catalog snapshot, never a
 * cache (see below); may raise an error only as any catalog read can.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"

#include "extension_installed.h"

bool
coco_extension_installed(void)
{
	MemoryContext old = CurrentMemoryContext;
	bool		installed;

	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;

	StartTransactionCommand();

	/*
	 * Asked from the commit callback of the transaction that created or
	 * dropped the extension, before its invalidations are sent: a cache
	 * entry or a catalog snapshot kept from earlier would not see the change
	 * (get_extension_oid() uses a cache from PostgreSQL 18), so read the
	 * catalog itself with a new snapshot.
	 */
	InvalidateCatalogSnapshot();
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("cocohooks"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	installed = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);
	return installed;
}
