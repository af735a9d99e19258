/*-------------------------------------------------------------------------
 *
 * row_filter.c
 *	  A hook's row filter, evaluated per row by the row trigger.
 *
 * The hook cache loads each filter's tree (filter_compile.c) with the
 * table's hooks; the first row that needs it compiles it for the relation
 * the trigger fires on: columns renumbered for a partition, OLD and NEW
 * pointed at the two slots the executor's expression machinery reads
 * (INNER_VAR and OUTER_VAR, as trigger.c does for a WHEN clause), planned
 * and initialized once.  Per row, the filter costs storing two tuples in
 * slots and running the compiled steps: no catalog access.  On a create,
 * OLD is a row of NULLs; a delete has OLD only.  A NULL result does not
 * pass, as in WHERE.
 *
 * A filter that raises an error never fails the write: the hook fires for
 * that row, as if the filter had passed (an event too many is better than
 * one lost), and a WARNING names the hook and the error.  A filter that
 * calls only functions built into the server runs as it is, and the
 * errors its values cause (division by zero, a bad cast) are caught with
 * no subtransaction, which would cost more per row than the whole trigger:
 * built-in functions raise them with nothing held (see may_catch).  A
 * filter that calls any other function (SQL, PL, C from an extension), or
 * casts to a domain (whose checks may call them), runs in a subtransaction
 * per row, which undoes whatever such a function left behind, and is
 * compiled afresh after an error.  Errors of the server itself (a cancel,
 * out of memory, I/O) are not the filter's and are never caught.
 *
 * Runs in: backends running a row trigger.
 *
 * Invariants:
 *	- a filter's compiled state lives in its own memory context under the
 *	  hook cache entry's, reset when it is compiled afresh;
 *	- per-row memory is the filter context's per-tuple memory, reset after
 *	  every row;
 *	- coco_row_filter_passes never raises an error for the filter's own
 *	  failure; the server's own errors pass through.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/attmap.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/prs2lock.h"
#include "rewrite/rewriteManip.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "hook_stats.h"
#include "own_transaction.h"
#include "pg_compat.h"
#include "row_filter.h"

struct CocoRowFilter
{
	int64		hook_id;
	Oid			relid;			/* the relation the trigger fires on */
	Oid			collection_relid;	/* the one the tree's columns are of */
	char	   *tree;			/* nodeToString() of the checked filter; NULL:
								 * not compiled (the catalog's trigger failed) */
	MemoryContext cxt;			/* what is compiled from it */
	ExprState  *state;			/* NULL: not compiled (yet, or afresh) */
	bool		guarded;		/* runs in a subtransaction per row */
};

struct CocoRowFilterRows
{
	ExprContext *econtext;
	TupleTableSlot *new_slot;	/* OUTER_VAR */
	TupleTableSlot *old_slot;	/* INNER_VAR */
};

CocoRowFilter *
coco_row_filter_load(Relation rel, Oid collection_relid, int64 hook_id, const char *tree)
{
	CocoRowFilter *f = palloc0(sizeof(CocoRowFilter));

	f->hook_id = hook_id;
	f->relid = RelationGetRelid(rel);
	f->collection_relid = collection_relid;
	f->tree = tree ? pstrdup(tree) : NULL;
	f->cxt = AllocSetContextCreate(CurrentMemoryContext, "cocohooks row filter",
								   ALLOCSET_SMALL_SIZES);
	return f;
}

CocoRowFilterRows *
coco_row_filter_rows_create(Relation rel)
{
	CocoRowFilterRows *rows = palloc0(sizeof(CocoRowFilterRows));
	TupleDesc	desc = CreateTupleDescCopy(RelationGetDescr(rel));

	rows->econtext = CreateStandaloneExprContext();
	rows->new_slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	rows->old_slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	rows->econtext->ecxt_outertuple = rows->new_slot;
	rows->econtext->ecxt_innertuple = rows->old_slot;
	return rows;
}

/* Whether a function's code is the server's own (language internal). */
static bool
not_built_in(Oid fn, void *context)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	bool		other = true;

	if (HeapTupleIsValid(tup))
	{
		other = ((Form_pg_proc) GETSTRUCT(tup))->prolang != INTERNALlanguageId;
		ReleaseSysCache(tup);
	}
	return other;
}

static bool
needs_subtransaction(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, CoerceToDomain) || check_functions_in_node(node, not_built_in, NULL))
		return true;
	return expression_tree_walker(node, needs_subtransaction, context);
}

static bool
function_missing(Oid fn, void *context)
{
	return !SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(fn));
}

/* Whether a function the tree calls was dropped since it was registered. */
static bool
calls_dropped_function(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, function_missing, NULL))
		return true;
	return expression_tree_walker(node, calls_dropped_function, context);
}

/* Compiles the tree for the firing relation, in f->cxt. */
static void
compile(CocoRowFilter *f)
{
	MemoryContext old;
	Node	   *expr;

	if (f->tree == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the filter was not compiled"),
				 errhint("Set it again with alter_hook().")));
	old = MemoryContextSwitchTo(f->cxt);
	expr = stringToNode(f->tree);

	if (calls_dropped_function(expr, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("a function the filter calls was dropped")));

	if (f->relid != f->collection_relid)
	{
		/* a partition: the tree numbers the columns of the partitioned table */
		Relation	parent = table_open(f->collection_relid, AccessShareLock);
		Relation	rel = table_open(f->relid, NoLock);
		AttrMap    *map = coco_build_attrmap_by_name(RelationGetDescr(rel),
													 RelationGetDescr(parent));
		bool		whole_row;

		expr = map_variable_attnos(expr, PRS2_OLD_VARNO, 0, map, InvalidOid, &whole_row);
		expr = map_variable_attnos(expr, PRS2_NEW_VARNO, 0, map, InvalidOid, &whole_row);
		table_close(rel, NoLock);
		table_close(parent, AccessShareLock);
	}
	ChangeVarNodes(expr, PRS2_OLD_VARNO, INNER_VAR, 0);
	ChangeVarNodes(expr, PRS2_NEW_VARNO, OUTER_VAR, 0);
	expr = (Node *) expression_planner((Expr *) expr);
	f->guarded = needs_subtransaction(expr, NULL);
	f->state = ExecInitQual(make_ands_implicit((Expr *) expr), NULL);
	MemoryContextSwitchTo(old);
}

static void
report(CocoRowFilter *f, ErrorData *edata)
{
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("could not evaluate the filter of hook %lld: %s",
					(long long) f->hook_id, edata->message),
			 errdetail("The hook fires for this row, as if its filter were true.")));
	FreeErrorData(edata);
	coco_hook_stats_filter_error(f->hook_id);
}

/*
 * Whether an error raised by a built-in function, with no subtransaction
 * to clean up after it, may be caught.  ereport(ERROR) resets the interrupt
 * holdoff count, so a lock still held cannot be seen; but the errors a
 * filter's own values cause (classes 22 data exception, 42 and the like)
 * are raised with nothing held.  Errors of the server itself (out of
 * memory or other resources, cancel, I/O, internal) are not the filter's:
 * they end the statement, as they would without a filter.  Compiling
 * (catalog lookups, a function gone since registration) is caught whole.
 */
static bool
may_catch(int sqlerrcode, bool compiling)
{
	int			class = ERRCODE_TO_CATEGORY(sqlerrcode);

	if (sqlerrcode == ERRCODE_QUERY_CANCELED || sqlerrcode == ERRCODE_OUT_OF_MEMORY ||
		sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
		return false;
	if (compiling)
		return true;
	return class != ERRCODE_INSUFFICIENT_RESOURCES &&
		class != ERRCODE_OPERATOR_INTERVENTION &&
		class != ERRCODE_SYSTEM_ERROR &&
		class != ERRCODE_INTERNAL_ERROR;
}

typedef struct GuardedRun
{
	CocoRowFilter *filter;
	ExprContext *econtext;
	bool		passes;
} GuardedRun;

static void
run_guarded(void *arg)
{
	GuardedRun *run = (GuardedRun *) arg;

	run->passes = ExecQual(run->filter->state, run->econtext);
}

/* A filter calling functions that are not built in: one subtransaction. */
static bool
passes_guarded(CocoRowFilter *f, ExprContext *econtext)
{
	GuardedRun	run = {f, econtext, true};
	ErrorData  *edata = coco_in_subtransaction(run_guarded, &run);

	if (edata == NULL)
		return run.passes;
	if (!may_catch(edata->sqlerrcode, true))
		ReThrowError(edata);
	/* a function may have been left mid-call: compile afresh */
	MemoryContextReset(f->cxt);
	f->state = NULL;
	report(f, edata);
	return true;
}

/*
 * Compiles the filter if needed and runs it, unless it must run in a
 * subtransaction (*guarded).
 */
static bool
passes_built_in(CocoRowFilter *f, ExprContext *econtext, bool *guarded)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool passes = true;
	volatile bool compiling = false;

	*guarded = false;
	PG_TRY();
	{
		if (f->state == NULL)
		{
			compiling = true;
			compile(f);
			compiling = false;
		}
		if (f->guarded)
			*guarded = true;
		else
			passes = ExecQual(f->state, econtext);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (!may_catch(edata->sqlerrcode, compiling))
			PG_RE_THROW();
		FlushErrorState();
		if (compiling)
		{
			MemoryContextReset(f->cxt);
			f->state = NULL;
		}
		report(f, edata);
		passes = true;
	}
	PG_END_TRY();
	return passes;
}

bool
coco_row_filter_passes(CocoRowFilter *f, CocoRowFilterRows *rows,
					   HeapTuple new_row, HeapTuple old_row)
{
	bool		guarded;
	bool		passes;

	if (new_row)
		ExecStoreHeapTuple(new_row, rows->new_slot, false);
	else
		ExecStoreAllNullTuple(rows->new_slot);
	if (old_row)
		ExecStoreHeapTuple(old_row, rows->old_slot, false);
	else
		ExecStoreAllNullTuple(rows->old_slot);

	passes = passes_built_in(f, rows->econtext, &guarded);
	if (guarded)
		passes = passes_guarded(f, rows->econtext);

	ExecClearTuple(rows->new_slot);
	ExecClearTuple(rows->old_slot);
	ResetExprContext(rows->econtext);
	return passes;
}
