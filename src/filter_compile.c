/*-------------------------------------------------------------------------
 *
 * filter_compile.c
 *	  A hook's row filter, from the text register_hook() is given to the
 *	  node tree the row trigger evaluates.
 *
 * A filter is a boolean SQL expression over NEW and OLD, as in a trigger's
 * WHEN clause.  It is parsed and checked once, at registration, with the
 * caller's search_path (coco_filter_compile): one expression, columns named
 * NEW.x or OLD.x of the hook's table only (OLD alone in a delete hook's
 * filter: NEW is what a save writes), no subquery, aggregate, window or
 * set-returning function, no volatile function.
 *
 * The catalog keeps it twice.  filter_tree is the tree, as pg_trigger keeps
 * tgqual: columns by number, functions and operators by oid, so it follows
 * renames by itself, and it is what the row trigger evaluates
 * (row_filter.c).  filter is the same tree written back as text with every
 * name that is not in pg_catalog qualified (coco_filter_deparse, run with
 * the catalog owner's search_path): what pg_dump saves and a restore
 * parses again, since oids and column numbers change in a restore.  A
 * trigger on cocohooks.hooks (cocohooks_compile_hook_filter) makes the
 * tree from the text on every insert, the restore's included, and on every
 * update of the text (column_renames.c writes it again after a rename).
 *
 * Runs in: backends (register_hook, alter_hook, the catalog's trigger, the
 * rename event trigger).
 *
 * Invariants:
 *	- in the tree, OLD's columns are Vars of range table entry 1 and NEW's
 *	  of entry 2 (PRS2_OLD_VARNO and PRS2_NEW_VARNO, as in tgqual);
 *	- the text parses back, with the search_path pg_catalog, into the same
 *	  tree;
 *	- a filter the trigger cannot compile (a restore whose function is
 *	  gone) does not fail the insert: the hook is kept, disabled, with the
 *	  reason in disabled_reason, and a WARNING says so.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "rewrite/prs2lock.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

#include "cocohooks.h"
#include "filter_compile.h"
#include "hooks_catalog.h"
#include "own_transaction.h"

PG_FUNCTION_INFO_V1(cocohooks_compile_hook_filter);

/* The filter is parsed as the target of "SELECT <filter>". */
#define FILTER_PREFIX	"SELECT "

typedef struct FilterCheck
{
	bool		is_delete;
	ParseState *pstate;
	Oid			volatile_fn;
} FilterCheck;

/* Shows a syntax error's position in the filter, not in the caller's query. */
static void
filter_error_callback(void *arg)
{
	const char *source = (const char *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos - (int) strlen(FILTER_PREFIX));
		internalerrquery(source);
	}
	errcontext("filter of the hook");
}

static void
refuse(ParseState *pstate, int location, const char *msg, const char *detail,
	   const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg_internal("%s", msg),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 parser_errposition(pstate, location)));
}

/* Before names are looked up: every column is NEW.x or OLD.x, no subquery. */
static bool
check_raw(Node *node, void *context)
{
	ParseState *pstate = (ParseState *) context;

	if (node == NULL)
		return false;
	if (IsA(node, SubLink))
		refuse(pstate, ((SubLink *) node)->location,
			   _("filter cannot contain a subquery"), NULL, NULL);
	if (IsA(node, ColumnRef))
	{
		ColumnRef  *ref = (ColumnRef *) node;
		Node	   *first = linitial(ref->fields);
		const char *name = IsA(first, String) ? strVal(first) : NULL;

		if (list_length(ref->fields) == 1 && name != NULL &&
			(strcmp(name, "new") == 0 || strcmp(name, "old") == 0))
			refuse(pstate, ref->location,
				   _("filter cannot use a whole row"), NULL,
				   _("Name its columns: NEW.column or OLD.column."));
		if (list_length(ref->fields) < 2 || name == NULL ||
			(strcmp(name, "new") != 0 && strcmp(name, "old") != 0))
			refuse(pstate, ref->location,
				   _("filter must name columns as NEW.column or OLD.column"),
				   name ? psprintf(_("\"%s\" is neither NEW nor OLD."),
								   NameListToString(ref->fields)) : NULL,
				   _("NEW is the row a save writes, OLD the row before an update or a delete."));
		return false;
	}
	return raw_expression_tree_walker(node, check_raw, context);
}

static bool
is_volatile_function(Oid fn, void *context)
{
	FilterCheck *check = (FilterCheck *) context;

	if (func_volatile(fn) != PROVOLATILE_VOLATILE)
		return false;
	check->volatile_fn = fn;
	return true;
}

/* After: only the table's own columns, nothing a per-row check cannot run. */
static bool
check_transformed(Node *node, void *context)
{
	FilterCheck *check = (FilterCheck *) context;

	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varattno == InvalidAttrNumber)
			refuse(check->pstate, var->location,
				   _("filter cannot use a whole row"), NULL,
				   _("Name its columns: NEW.column or OLD.column."));
		if (var->varattno < 0)
			refuse(check->pstate, var->location,
				   _("filter cannot use a system column"), NULL, NULL);
		if (check->is_delete && var->varno == PRS2_NEW_VARNO)
			refuse(check->pstate, var->location,
				   _("filter of a delete hook cannot use NEW"), NULL,
				   _("OLD is the deleted row."));
		return false;
	}
	if (IsA(node, Aggref) || IsA(node, GroupingFunc))
		refuse(check->pstate, exprLocation(node),
			   _("filter cannot contain an aggregate function"), NULL, NULL);
	if (IsA(node, WindowFunc))
		refuse(check->pstate, exprLocation(node),
			   _("filter cannot contain a window function"), NULL, NULL);
	if (check_functions_in_node(node, is_volatile_function, check))
		refuse(check->pstate, exprLocation(node),
			   _("filter cannot call a volatile function"),
			   psprintf(_("Function %s is volatile."),
						format_procedure(check->volatile_fn)),
			   _("A filter is checked once per row: it must give the same answer for the same row."));
	return expression_tree_walker(node, check_transformed, context);
}

/* The one expression of "SELECT <filter>", or an error. */
static Node *
parse_one_expression(const char *sql)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	SelectStmt *select;
	ResTarget  *target;

	select = list_length(raw) == 1 ?
		(SelectStmt *) ((RawStmt *) linitial(raw))->stmt : NULL;
	if (select == NULL || !IsA(select, SelectStmt) ||
		select->op != SETOP_NONE || list_length(select->targetList) != 1 ||
		select->distinctClause || select->intoClause || select->fromClause ||
		select->whereClause || select->groupClause || select->havingClause ||
		select->windowClause || select->valuesLists || select->sortClause ||
		select->limitOffset || select->limitCount || select->lockingClause ||
		select->withClause)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter must be one expression"),
				 errhint("Write it as a trigger's WHEN condition, e.g. NEW.status = 'published'.")));
	target = (ResTarget *) linitial(select->targetList);
	if (target->name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter must be one expression"),
				 errdetail("It has an alias, \"%s\".", target->name)));
	return target->val;
}

Node *
coco_filter_compile(Oid relid, CocoEventKind event, const char *source)
{
	char	   *sql = psprintf(FILTER_PREFIX "%s", source);
	ErrorContextCallback errcb;
	Relation	rel;
	ParseState *pstate;
	ParseNamespaceItem *old_item;
	ParseNamespaceItem *new_item;
	Node	   *expr;
	FilterCheck check;

	errcb.callback = filter_error_callback;
	errcb.arg = (void *) source;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	expr = parse_one_expression(sql);

	rel = table_open(relid, AccessShareLock);
	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = sql;
	/* entries 1 and 2, named only as qualifiers: OLD.x and NEW.x */
	old_item = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
											 makeAlias("old", NIL), false, false);
	addNSItemToQuery(pstate, old_item, false, true, false);
	new_item = addRangeTableEntryForRelation(pstate, rel, AccessShareLock,
											 makeAlias("new", NIL), false, false);
	addNSItemToQuery(pstate, new_item, false, true, false);
	Assert(old_item->p_rtindex == PRS2_OLD_VARNO && new_item->p_rtindex == PRS2_NEW_VARNO);

	(void) check_raw(expr, pstate);
	expr = transformExpr(pstate, expr, EXPR_KIND_OTHER);
	expr = coerce_to_boolean(pstate, expr, "filter");
	assign_expr_collations(pstate, expr);
	if (expression_returns_set(expr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter cannot call a set-returning function")));

	check.is_delete = (event == COCO_PRE_DELETE || event == COCO_POST_DELETE);
	check.pstate = pstate;
	check.volatile_fn = InvalidOid;
	(void) check_transformed(expr, &check);

	free_parsestate(pstate);
	table_close(rel, AccessShareLock);
	error_context_stack = errcb.previous;
	return expr;
}

/* Points the Vars of a tree at the deparse stack of coco_filter_deparse. */
static bool
vars_to_levels(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		var->varlevelsup = (var->varno == PRS2_OLD_VARNO) ? 1 : 0;
		var->varno = 1;
		var->varnosyn = 1;		/* what ruleutils prefers, for a parse tree */
		return false;
	}
	return expression_tree_walker(node, vars_to_levels, context);
}

char *
coco_filter_deparse(Node *tree, Oid relid)
{
	Node	   *expr = copyObject(tree);
	List	   *names;

	/*
	 * ruleutils names one relation per level: NEW is the innermost, OLD the
	 * next one out, so each column is written new.x or old.x.
	 */
	(void) vars_to_levels(expr, NULL);
	names = list_concat(deparse_context_for("new", relid),
						deparse_context_for("old", relid));
	return deparse_expression(expr, names, true, false);
}

/*
 * The text of a stored tree, or NULL if it cannot be written (a function it
 * calls was dropped since): the caller keeps the text it has.
 */
typedef struct FilterStep
{
	Oid			relid;
	int			event;			/* compile_step */
	const char *in;				/* the tree (source_step) or the text */
	char	   *out;			/* the text (source_step) or the tree */
} FilterStep;

static void
source_step(void *arg)
{
	FilterStep *step = (FilterStep *) arg;

	step->out = coco_filter_deparse(stringToNode(step->in), step->relid);
}

static void
compile_step(void *arg)
{
	FilterStep *step = (FilterStep *) arg;

	step->out = nodeToString(coco_filter_compile(step->relid, step->event, step->in));
}

char *
coco_filter_source(const char *tree, Oid relid)
{
	FilterStep	step = {relid, 0, tree, NULL};
	ErrorData  *edata = coco_in_subtransaction(source_step, &step);

	if (edata)
	{
		FreeErrorData(edata);
		return NULL;
	}
	return step.out;
}

/*
 * BEFORE INSERT OR UPDATE OF filter, collection, event ON cocohooks.hooks:
 * filter_tree is compiled from filter.  A filter that no longer compiles
 * (a restore into a database without its function) disables the hook
 * rather than failing the insert, which would lose every hook restored
 * with it.
 */
Datum
cocohooks_compile_hook_filter(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	row;
	TupleDesc	desc;
	Datum		value;
	bool		isnull;
	int			cols[3] = {Anum_hooks_filter_tree, Anum_hooks_enabled,
	Anum_hooks_disabled_reason};
	Datum		values[3] = {0};
	bool		nulls[3] = {true, false, false};
	int			ncols = 1;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cocohooks.compile_hook_filter() must be fired BEFORE INSERT OR UPDATE for each row")));
	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);

	value = coco_hooks_attr(row, desc, Anum_hooks_filter, &isnull);
	if (!isnull)
	{
		FilterStep	step;
		ErrorData  *edata;

		step.in = TextDatumGetCString(value);
		step.relid = DatumGetObjectId(coco_hooks_attr(row, desc, Anum_hooks_collection, &isnull));
		step.event = coco_event_from_name(TextDatumGetCString(coco_hooks_attr(row, desc,
																			  Anum_hooks_event,
																			  &isnull)));
		edata = coco_in_subtransaction(compile_step, &step);
		if (edata == NULL)
		{
			values[0] = CStringGetTextDatum(step.out);
			nulls[0] = false;
		}
		else
		{
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("hook %lld is disabled: its filter does not compile: %s",
							(long long) DatumGetInt64(coco_hooks_attr(row, desc, Anum_hooks_id, &isnull)),
							edata->message),
					 errdetail("The filter is \"%s\".", step.in),
					 errhint("Fix it with alter_hook(), then enable_hook().")));
			values[1] = BoolGetDatum(false);
			values[2] = CStringGetTextDatum(psprintf("its filter does not compile: %s",
													 edata->message));
			ncols = 3;
		}
	}
	row = heap_modify_tuple_by_cols(row, desc, ncols, cols, values, nulls);
	return PointerGetDatum(row);
}
