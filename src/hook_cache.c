/*-------------------------------------------------------------------------
 *
 * hook_cache.c
 *	  Per-backend cache of what the row trigger needs to know about a table:
 *	  its collection, primary key, row-to-JSON function and enabled hooks.
 *
 * The write path must not scan catalogs per row, so everything is read once
 * per table and kept until a relcache invalidation says it may be stale:
 * one for the table itself (ALTER TABLE, a new primary key) drops its entry;
 * one for cocohooks.hooks, which a statement trigger on that table sends on
 * every change, drops them all; so does any change to pg_cast, since a cast
 * to json changes how to_jsonb renders a type (see row_json.c).  Entries
 * are keyed by the relation the trigger fires on, so each partition of a
 * partitioned collection has its own entry pointing at the collection.
 *
 * Runs in: backends running a row trigger.  The invalidation callbacks are
 * registered in every process that preloads the library.
 *
 * Invariants:
 *	- each entry owns a memory context under CacheMemoryContext, replaced
 *	  when the entry is rebuilt: what a lookup returned stays valid until a
 *	  later lookup rebuilds it;
 *	- an entry is marked valid before it is built, so an invalidation that
 *	  arrives while the catalogs are read makes the next lookup build it
 *	  again; a build that fails leaves it invalid;
 *	- the invalidation callbacks only clear flags: no catalog access, no
 *	  error;
 *	- lookups may raise errors (catalog access), in the trigger, before the
 *	  change commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "cocohooks.h"
#include "event_message.h"
#include "hook_cache.h"
#include "hook_filters.h"
#include "hooks_catalog.h"
#include "row_json.h"

typedef struct CacheEntry
{
	Oid			relid;			/* hash key */
	MemoryContext cxt;
	CocoTableHooks hooks;
} CacheEntry;

static HTAB *table_cache = NULL;
static Oid	hooks_relid = InvalidOid;
static Oid	hooks_index_relid = InvalidOid;

static void
invalidate_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	CacheEntry *entry;

	if (table_cache == NULL)
		return;

	if (relid == InvalidOid || relid == hooks_relid)
	{
		if (relid == InvalidOid)
			hooks_relid = hooks_index_relid = InvalidOid;
		hash_seq_init(&status, table_cache);
		while ((entry = hash_seq_search(&status)) != NULL)
			entry->hooks.valid = false;
		return;
	}

	hash_seq_init(&status, table_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		if (entry->relid == relid || entry->hooks.collection_relid == relid)
			entry->hooks.valid = false;
	}
}

/* A cast to json may change how to_jsonb renders a column: replan all. */
static void
cast_changed_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	invalidate_callback(arg, InvalidOid);
}

void
coco_hook_cache_init(void)
{
	CacheRegisterRelcacheCallback(invalidate_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(CASTSOURCETARGET, cast_changed_callback, (Datum) 0);
}

static void
ensure_cache(void)
{
	HASHCTL		ctl;

	if (table_cache != NULL)
		return;
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(CacheEntry);
	ctl.hcxt = CacheMemoryContext;
	table_cache = hash_create("cocohooks table cache", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Finds cocohooks.hooks and its collection index; false if not installed. */
static bool
find_catalog(void)
{
	Oid			nsp;

	if (OidIsValid(hooks_relid) && OidIsValid(hooks_index_relid))
		return true;
	nsp = get_namespace_oid("cocohooks", true);
	if (!OidIsValid(nsp))
		return false;
	hooks_relid = get_relname_relid("hooks", nsp);
	hooks_index_relid = get_relname_relid("hooks_collection_idx", nsp);
	return OidIsValid(hooks_relid) && OidIsValid(hooks_index_relid);
}

/*
 * The table a trigger was created on: the relation itself, or for a clone
 * on a partition, the table at the top of its chain of parent triggers.
 */
static Oid
trigger_origin(Relation rel, Oid tgoid)
{
	Relation	tgrel;
	Oid			relid = RelationGetRelid(rel);
	int			depth = 0;

	tgrel = table_open(TriggerRelationId, AccessShareLock);
	while (OidIsValid(tgoid) && depth++ < 1000)
	{
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;
		Oid			parent = InvalidOid;

		ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(tgoid));
		scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);

			relid = tg->tgrelid;
			parent = tg->tgparentid;
		}
		systable_endscan(scan);
		tgoid = parent;
	}
	table_close(tgrel, AccessShareLock);
	return relid;
}

/* Sets pk_attnum and its output function, when the relation has a one-column key. */
static void
load_primary_key(CocoTableHooks *th, Relation rel)
{
	HeapTuple	idxtup;
	Oid			pkindex;

	th->pk_attnum = 0;
	(void) RelationGetIndexList(rel);	/* fills rd_pkindex */
	pkindex = rel->rd_pkindex;
	if (!OidIsValid(pkindex))
		return;
	idxtup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkindex));
	if (!HeapTupleIsValid(idxtup))
		return;
	if (((Form_pg_index) GETSTRUCT(idxtup))->indnkeyatts == 1)
	{
		AttrNumber	attnum = ((Form_pg_index) GETSTRUCT(idxtup))->indkey.values[0];
		Oid			typoutput;
		bool		isvarlena;

		if (attnum > 0)
		{
			getTypeOutputInfo(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid,
							  &typoutput, &isvarlena);
			fmgr_info_cxt(typoutput, &th->pk_out, CurrentMemoryContext);
			th->pk_attnum = attnum;
		}
	}
	ReleaseSysCache(idxtup);
}

/*
 * to_jsonb() takes anyelement and reads its argument type from the call
 * expression; give it one that says "this table's row type".
 */
static void
load_to_jsonb(CocoTableHooks *th, Relation rel)
{
	Node	   *arg = (Node *) makeNullConst(rel->rd_rel->reltype, -1, InvalidOid);

	fmgr_info_cxt(F_TO_JSONB, &th->to_jsonb, CurrentMemoryContext);
	th->to_jsonb.fn_expr = (Node *) makeFuncExpr(F_TO_JSONB, JSONBOID,
												 list_make1(arg), InvalidOid,
												 InvalidOid, COERCE_EXPLICIT_CALL);
}

static int
compare_hook_ids(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

typedef struct HookRow
{
	int64		id;				/* first, for sorting */
	int			event;
	char	   *url;
	Jsonb	   *headers;
	char	   *secret;
	int32		timeout_ms;
	ArrayType  *columns;		/* NULL: fires on any update */
	ArrayType  *exclude;		/* NULL: the whole row */
	char	   *filter_tree;	/* NULL: no filter, or not compiled */
	bool		has_filter;
	int			spec_off;		/* where its spec went in th->hooks[event] */
	int			spec_len;
	int32		max_retries;
	uint32		spec_flags;		/* COCO_SPEC_ORDERED */
	bool		versioned;		/* the catalog has settings versions */
	uint32		settings_version;
} HookRow;

/*
 * The operations whose pre_* events must wait for the AFTER trigger: a
 * BEFORE row trigger that is not ours fires after our BEFORE trigger (the
 * relation's triggers fire in name order, and a name may sort after ours,
 * in any encoding), or the relation has stored generated columns (computed
 * after all BEFORE triggers), and our AFTER trigger covers the operation
 * (hook_triggers.c adds it in those cases).  A trigger with a WHEN clause
 * or a column list counts, as it may fire.
 */
static int16
pre_events_in_after(Relation rel, Oid tgoid)
{
	TriggerDesc *td = rel->trigdesc;
	Oid			ours = InvalidOid;
	bool		past_ours = false;
	int16		later = 0;
	int16		after_ops = 0;
	const int16 ops = TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE;

	if (td == NULL)
		return 0;
	for (int i = 0; i < td->numtriggers; i++)
		if (td->triggers[i].tgoid == tgoid)
			ours = td->triggers[i].tgfoid;
	for (int i = 0; i < td->numtriggers; i++)
	{
		const Trigger *t = &td->triggers[i];

		if (!TRIGGER_FOR_ROW(t->tgtype))
			continue;
		if (t->tgfoid == ours)
		{
			if (TRIGGER_FOR_BEFORE(t->tgtype))
				past_ours = true;
			else if (TRIGGER_FOR_AFTER(t->tgtype))
				after_ops = t->tgtype & ops;
		}
		else if (past_ours && TRIGGER_FOR_BEFORE(t->tgtype) &&
				 t->tgenabled != TRIGGER_DISABLED)
			later |= t->tgtype & ops;
	}
	/* stored generated columns are computed after every BEFORE trigger */
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		later |= TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE;
	return later & after_ops;
}

/* Reads the enabled hooks of the collection into per-event spec lists. */
static void
load_hooks(CocoTableHooks *th, Relation rel)
{
	Relation	hooksrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc;
	HookRow    *rows;
	int			nrows = 0;
	int			maxrows = 8;
	StringInfoData specs[COCO_NUM_EVENTS];

	for (int e = 0; e < COCO_NUM_EVENTS; e++)
	{
		th->nhooks[e] = 0;
		th->hooks[e] = NULL;
		th->hooks_len[e] = 0;
	}
	if (!find_catalog())
		return;

	rows = palloc(sizeof(HookRow) * maxrows);
	hooksrel = table_open(hooks_relid, AccessShareLock);
	ScanKeyInit(&key, Anum_hooks_collection, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(th->collection_relid));
	desc = RelationGetDescr(hooksrel);
	scan = systable_beginscan(hooksrel, hooks_index_relid, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		HookRow    *row;
		int			event;
		Datum		value;
		Datum		url;
		bool		isnull;
		bool		url_isnull;

		value = coco_hooks_attr(tup, desc, Anum_hooks_enabled, &isnull);
		if (isnull || !DatumGetBool(value))
			continue;
		value = coco_hooks_attr(tup, desc, Anum_hooks_event, &isnull);
		event = isnull ? -1 : coco_event_from_name(TextDatumGetCString(value));
		url = coco_hooks_attr(tup, desc, Anum_hooks_url, &url_isnull);
		if (event < 0 || url_isnull)
			continue;
		if (nrows == maxrows)
		{
			maxrows *= 2;
			rows = repalloc(rows, sizeof(HookRow) * maxrows);
		}
		row = &rows[nrows++];
		row->id = DatumGetInt64(coco_hooks_attr(tup, desc, Anum_hooks_id, &isnull));
		row->event = event;
		row->url = TextDatumGetCString(url);
		value = coco_hooks_attr(tup, desc, Anum_hooks_headers, &isnull);
		row->headers = isnull ? NULL : DatumGetJsonbPCopy(value);
		value = coco_hooks_attr(tup, desc, Anum_hooks_secret, &isnull);
		row->secret = isnull ? NULL : TextDatumGetCString(value);
		row->timeout_ms = DatumGetInt32(coco_hooks_attr(tup, desc, Anum_hooks_timeout_ms, &isnull));
		value = coco_hooks_attr(tup, desc, Anum_hooks_max_retries, &isnull);
		row->max_retries = isnull ? COCO_RETRIES_UNLIMITED : DatumGetInt32(value);
		value = coco_hooks_attr(tup, desc, Anum_hooks_columns, &isnull);
		row->columns = isnull ? NULL : DatumGetArrayTypePCopy(value);
		value = coco_hooks_attr(tup, desc, Anum_hooks_exclude_columns, &isnull);
		row->exclude = isnull ? NULL : DatumGetArrayTypePCopy(value);
		value = coco_hooks_attr(tup, desc, Anum_hooks_filter_tree, &isnull);
		row->filter_tree = isnull ? NULL : TextDatumGetCString(value);
		/* a filter whose tree is missing (enabled by hand after a failed compile) */
		(void) coco_hooks_attr(tup, desc, Anum_hooks_filter, &isnull);
		row->has_filter = !isnull;
		/* no column (0.1's catalog, before the update): no order, as in 0.1 */
		value = coco_hooks_attr(tup, desc, Anum_hooks_ordering, &isnull);
		row->spec_flags = (!isnull && strcmp(TextDatumGetCString(value), "document") == 0) ?
			COCO_SPEC_ORDERED : 0;
		value = coco_hooks_attr(tup, desc, Anum_hooks_settings_version, &isnull);
		row->versioned = !isnull;
		row->settings_version = isnull ? 0 : (uint32) DatumGetInt32(value);
	}
	systable_endscan(scan);
	table_close(hooksrel, AccessShareLock);

	/* fire in registration order */
	qsort(rows, nrows, sizeof(HookRow), compare_hook_ids);

	for (int e = 0; e < COCO_NUM_EVENTS; e++)
		initStringInfo(&specs[e]);
	for (int i = 0; i < nrows; i++)
	{
		HookRow    *row = &rows[i];

		if (th->nhooks[row->event] >= PG_UINT16_MAX)
		{
			row->spec_len = 0;
			continue;
		}
		row->spec_off = specs[row->event].len;
		if (row->versioned)
			coco_hook_ref_append(&specs[row->event], row->id, row->settings_version, false);
		else
			coco_hook_spec_append(&specs[row->event], row->id, row->url,
								  row->headers, row->secret,
								  row->timeout_ms, row->max_retries, row->spec_flags);
		row->spec_len = specs[row->event].len - row->spec_off;
		th->nhooks[row->event]++;
	}
	for (int e = 0; e < COCO_NUM_EVENTS; e++)
	{
		th->hooks[e] = specs[e].data;
		th->hooks_len[e] = specs[e].len;
	}

	/* events with a hook that filters or leaves columns out */
	for (int i = 0; i < nrows; i++)
	{
		HookRow    *row = &rows[i];

		if ((row->columns || row->exclude || row->has_filter) && row->spec_len > 0 &&
			th->filters[row->event] == NULL)
			th->filters[row->event] = palloc0(sizeof(CocoHookFilter) * th->nhooks[row->event]);
	}
	{
		int			index[COCO_NUM_EVENTS] = {0};

		for (int i = 0; i < nrows; i++)
		{
			HookRow    *row = &rows[i];

			if (row->spec_len == 0)
				continue;
			if (th->filters[row->event])
				coco_hook_filter_load(th, rel, row->event, index[row->event],
									  row->spec_off, row->spec_len,
									  row->columns, row->exclude,
									  row->id, row->has_filter, row->filter_tree);
			index[row->event]++;
		}
	}
}

static void
build_entry(CacheEntry *entry, Relation rel, Oid tgoid)
{
	CocoTableHooks *th = &entry->hooks;
	MemoryContext old;

	if (entry->cxt)
		MemoryContextDelete(entry->cxt);
	entry->cxt = AllocSetContextCreate(CacheMemoryContext,
									   "cocohooks table hooks",
									   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(entry->cxt);

	memset(th, 0, sizeof(*th));
	th->valid = true;
	th->relid = entry->relid;
	th->collection_relid = RelationGetRelid(rel);
	if (rel->rd_rel->relispartition)
		th->collection_relid = trigger_origin(rel, tgoid);
	th->collection = get_rel_name(th->collection_relid);
	if (th->collection == NULL)
		th->collection = pstrdup(RelationGetRelationName(rel));
	load_primary_key(th, rel);
	load_to_jsonb(th, rel);
	th->row_plan = coco_row_json_plan(rel);
	load_hooks(th, rel);
	th->pre_in_after = pre_events_in_after(rel, tgoid);

	MemoryContextSwitchTo(old);
}

/*
 * The cache entry for the relation a trigger fires on, built if missing or
 * stale.  tgoid is the firing trigger, used to find the collection of a
 * partition.  Returns a pointer valid until the next invalidation.
 */
CocoTableHooks *
coco_hook_cache_lookup(Relation rel, Oid tgoid)
{
	Oid			relid = RelationGetRelid(rel);
	CacheEntry *entry;
	bool		found;

	ensure_cache();
	entry = hash_search(table_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		entry->cxt = NULL;
		entry->hooks.valid = false;
		entry->hooks.collection_relid = InvalidOid;
	}
	if (!entry->hooks.valid)
	{
		/*
		 * Mark valid first: an invalidation that arrives while we read the
		 * catalogs clears the flag again, and the next lookup rebuilds.
		 */
		entry->hooks.valid = true;
		PG_TRY();
		{
			build_entry(entry, rel, tgoid);
		}
		PG_CATCH();
		{
			entry->hooks.valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	return &entry->hooks;
}
