/*-------------------------------------------------------------------------
 *
 * hook_filters.c
 *	  Hooks that fire only when chosen columns change (columns) or on rows
 *	  their filter passes (filter), and hooks that leave columns out of
 *	  their payloads (exclude_columns).
 *
 * Everything is worked out once, when the hook cache loads a table's hooks
 * (coco_hook_filter_load): the columns' numbers in the relation the
 * trigger fires on (a partition's may differ from its parent's), each
 * column type's equality function and collation, and the sets of excluded
 * columns, one per distinct set.  Per row, an update fires a filtered hook
 * only if one of its columns IS DISTINCT FROM its old value, compared with
 * the type's equality as IS DISTINCT FROM does (bytes, for a type without
 * one); creates and deletes fire it always.  A hook with a filter fires
 * only if the filter passes too, checked after the columns, which cost
 * less (row_filter.c).
 *
 * Renames are followed in the catalog (column_renames.c).  A name that no
 * longer names a column (dropped since the hook was registered) is ignored:
 * a filter left with no column fires on no update, and an exclusion of a
 * missing column leaves nothing out (a column added later under that name
 * is left out again).
 *
 * Runs in: backends running a row trigger (loaded by the hook cache,
 * checked per row by row_trigger.c).
 *
 * Invariants: filters live in the hook cache entry's memory context and
 * are rebuilt with it, when the table or its hooks change (hook_cache.c);
 * no catalog access per row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "hook_cache.h"
#include "hook_filters.h"
#include "row_filter.h"

/* The attribute numbers, in rel, of the names in a text[] (missing ones left out). */
static int
resolve_columns(Relation rel, ArrayType *names, AttrNumber **attnums, char ***found)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			k = 0;

	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	*attnums = palloc(sizeof(AttrNumber) * Max(n, 1));
	if (found)
		*found = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		AttrNumber	attnum;

		if (nulls[i])
			continue;
		name = TextDatumGetCString(elems[i]);
		attnum = get_attnum(RelationGetRelid(rel), name);
		if (attnum <= 0)
			continue;
		if (found)
			(*found)[k] = name;
		(*attnums)[k++] = attnum;
	}
	return k;
}

/* The exclusion with exactly these columns, added if new; -1 for none. */
static int
exclusion_for(CocoTableHooks *th, Relation rel, ArrayType *names)
{
	AttrNumber *attnums;
	char	  **found;
	int			n = resolve_columns(rel, names, &attnums, &found);
	TupleDesc	desc = RelationGetDescr(rel);
	CocoExclusion *ex;
	Datum	   *texts;

	if (n == 0)
		return -1;
	/* sort names along with their numbers, for the identity and for jsonb */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && attnums[j - 1] > attnums[j]; j--)
		{
			AttrNumber	a = attnums[j];
			char	   *s = found[j];

			attnums[j] = attnums[j - 1];
			found[j] = found[j - 1];
			attnums[j - 1] = a;
			found[j - 1] = s;
		}
	for (int i = 0; i < th->nexclusions; i++)
	{
		ex = &th->exclusions[i];
		if (ex->nattnums == n && memcmp(ex->attnums, attnums, sizeof(AttrNumber) * n) == 0)
			return i;
	}

	th->exclusions = th->exclusions ?
		repalloc(th->exclusions, sizeof(CocoExclusion) * (th->nexclusions + 1)) :
		palloc(sizeof(CocoExclusion));
	ex = &th->exclusions[th->nexclusions];
	ex->natts = desc->natts;
	ex->skip = palloc0(sizeof(bool) * Max(desc->natts, 1));
	ex->nattnums = n;
	ex->attnums = attnums;
	texts = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		ex->skip[attnums[i] - 1] = true;
		texts[i] = CStringGetTextDatum(found[i]);
	}
	ex->names = PointerGetDatum(construct_array(texts, n, TEXTOID, -1, false, TYPALIGN_INT));
	return th->nexclusions++;
}

/*
 * Fills th->filters[event][index] (allocated by the hook cache, which calls
 * this for every hook of an event that has a hook with any) for the hook
 * whose spec is spec_len bytes at spec_off of th->hooks[event], with its
 * columns, exclude_columns and filter (any may be NULL; a filter whose
 * tree is NULL was not compiled, and fails on every row).  In the cache's
 * memory context.
 */
void
coco_hook_filter_load(CocoTableHooks *th, Relation rel, int event, int index,
					  int spec_off, int spec_len, ArrayType *columns, ArrayType *exclude,
					  int64 hook_id, bool has_filter, const char *filter_tree)
{
	CocoHookFilter *f;
	TupleDesc	desc = RelationGetDescr(rel);

	f = &th->filters[event][index];
	f->spec_off = spec_off;
	f->spec_len = spec_len;
	f->exclusion = exclude ? exclusion_for(th, rel, exclude) : -1;
	f->filtered = (columns != NULL);
	if (has_filter)
	{
		if (th->filter_rows == NULL)
			th->filter_rows = coco_row_filter_rows_create(rel);
		f->row_filter = coco_row_filter_load(rel, th->collection_relid, hook_id, filter_tree);
	}
	if (columns)
	{
		f->ncolumns = resolve_columns(rel, columns, &f->columns, NULL);
		f->equal = palloc0(sizeof(FmgrInfo) * Max(f->ncolumns, 1));
		f->collations = palloc(sizeof(Oid) * Max(f->ncolumns, 1));
		f->typlens = palloc(sizeof(int16) * Max(f->ncolumns, 1));
		f->typbyvals = palloc(sizeof(bool) * Max(f->ncolumns, 1));
		for (int i = 0; i < f->ncolumns; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, f->columns[i] - 1);
			TypeCacheEntry *tc = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR_FINFO);

			if (OidIsValid(tc->eq_opr_finfo.fn_oid))
				fmgr_info_copy(&f->equal[i], &tc->eq_opr_finfo, CurrentMemoryContext);
			else
				f->equal[i].fn_oid = InvalidOid;
			f->collations[i] = att->attcollation;
			f->typlens[i] = att->attlen;
			f->typbyvals[i] = att->attbyval;
		}
	}
}

/* Whether a hook's columns let this row through (see the top). */
static bool
columns_changed(const CocoHookFilter *f, Relation rel, HeapTuple document, HeapTuple old_row)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (!f->filtered || old_row == NULL)
		return true;
	for (int i = 0; i < f->ncolumns; i++)
	{
		bool		new_null;
		bool		old_null;
		Datum		new_value = heap_getattr(document, f->columns[i], desc, &new_null);
		Datum		old_value = heap_getattr(old_row, f->columns[i], desc, &old_null);

		if (new_null || old_null)
		{
			if (new_null != old_null)
				return true;
			continue;
		}
		if (OidIsValid(f->equal[i].fn_oid))
		{
			if (!DatumGetBool(FunctionCall2Coll((FmgrInfo *) &f->equal[i], f->collations[i],
												new_value, old_value)))
				return true;
		}
		else if (!datum_image_eq(new_value, old_value, f->typbyvals[i], f->typlens[i]))
			return true;
	}
	return false;
}

/*
 * Whether a hook fires for this row: unless it has columns and the row is
 * an update (old_row given) in which none of them changed, if its filter
 * passes.  A delete's row is OLD to the filter.
 */
bool
coco_hook_filter_fires(CocoTableHooks *th, CocoHookFilter *f, Relation rel,
					   CocoEventKind event, HeapTuple document, HeapTuple old_row)
{
	bool		is_delete = (event == COCO_PRE_DELETE || event == COCO_POST_DELETE);

	if (!columns_changed(f, rel, document, old_row))
		return false;
	if (f->row_filter == NULL)
		return true;
	return coco_row_filter_passes(f->row_filter, th->filter_rows,
								  is_delete ? NULL : document,
								  is_delete ? document : old_row);
}
