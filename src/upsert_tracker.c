/*-------------------------------------------------------------------------
 *
 * upsert_tracker.c
 *	  Makes INSERT ... ON CONFLICT DO UPDATE that updates a row an `update`
 *	  for pre_save hooks too, and ON CONFLICT that skips a row silent.
 *
 * PostgreSQL fires BEFORE INSERT row triggers before it looks for a
 * conflict; when it finds one, it then fires BEFORE UPDATE triggers and
 * updates (DO UPDATE) or does nothing (DO NOTHING).  A pre_save "create"
 * sent at the BEFORE INSERT would announce a row that is never inserted.
 * So while a statement with ON CONFLICT on the table runs, the trigger
 * hands its pre_save create message here instead of queueing it:
 *
 *	- if a BEFORE UPDATE of the same table follows in the same statement,
 *	  the conflict path was taken: the create is dropped and the trigger
 *	  sends the update;
 *	- otherwise, at the next row or at the end of the statement, the create
 *	  is queued if the row was inserted (es_processed grew), and dropped if
 *	  the conflict skipped the row (DO NOTHING, or DO UPDATE ... WHERE).  In
 *	  a data-modifying CTE, which does not count rows, it is always queued.
 *
 * The statement running the trigger is the innermost ExecutorRun, tracked
 * by a hook that keeps a stack of running queries; that is cheap for every
 * query, and the plan is only examined when a hooked trigger asks.
 *
 * Runs in: backends running a row trigger.  The ExecutorRun hook wraps
 * every query of every process that preloads the library (the worker's
 * SPI statements too), but only the row trigger hands it messages.
 *
 * Invariants:
 *	- a held create lives in its query's es_query_cxt, and is queued or
 *	  dropped before that query's ExecutorRun returns; on an error it is
 *	  queued, as any pre_save is;
 *	- a query holds one create at a time, the previous one settled first,
 *	  so pre_save events keep the statement's row order;
 *	- the stack's frames live on the C stack and are popped on error too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "event_emit.h"
#include "pg_compat.h"
#include "upsert_tracker.h"

typedef struct RunFrame
{
	QueryDesc  *query;
	struct RunFrame *outer;
	bool		examined;		/* targets computed */
	List	   *targets;		/* OIDs of ON CONFLICT targets */
	bool		counts_rows;	/* all those ModifyTables set es_processed */
	/* the held pre_save create, if any */
	char	   *held;
	Size		held_len;
	Size		held_size;
	Oid			held_relid;
	uint64		held_processed;
} RunFrame;

static ExecutorRun_hook_type prev_executor_run = NULL;
static RunFrame *current = NULL;

static void
note_targets(RunFrame *f, Plan *plan, List *rtable)
{
	ModifyTable *mt;
	ListCell   *lc;

	if (plan == NULL || !IsA(plan, ModifyTable))
		return;
	mt = (ModifyTable *) plan;
	if (mt->onConflictAction == ONCONFLICT_NONE)
		return;
	if (!mt->canSetTag)
		f->counts_rows = false;
	if (mt->rootRelation > 0)
		f->targets = lappend_oid(f->targets, rt_fetch(mt->rootRelation, rtable)->relid);
	foreach(lc, mt->resultRelations)
		f->targets = lappend_oid(f->targets, rt_fetch((Index) lfirst_int(lc), rtable)->relid);
}

static void
examine(RunFrame *f)
{
	PlannedStmt *stmt = f->query->plannedstmt;
	MemoryContext old;
	ListCell   *lc;

	if (f->examined)
		return;
	f->examined = true;
	f->counts_rows = true;
	if (stmt == NULL || stmt->commandType != CMD_INSERT)
		return;
	old = MemoryContextSwitchTo(f->query->estate->es_query_cxt);
	note_targets(f, stmt->planTree, stmt->rtable);
	foreach(lc, stmt->subplans)
		note_targets(f, (Plan *) lfirst(lc), stmt->rtable);
	MemoryContextSwitchTo(old);
}

/* Queues the held create if its row was inserted, else drops it. */
static void
resolve_held(RunFrame *f, bool inserted_unknown)
{
	if (f->held_len == 0)
		return;
	if (inserted_unknown || !f->counts_rows ||
		f->query->estate->es_processed > f->held_processed)
	{
		coco_emit_messages_at_once(f->held, f->held_len);
	}
	f->held_len = 0;
}

/*
 * Called by the trigger for a pre_save create on rel (collection: the table
 * hooks were registered on).  Returns true if the message was held, false
 * if the caller should queue it now.
 */
bool
coco_upsert_hold(Relation rel, Oid collection, const char *msg, Size len)
{
	RunFrame   *f = current;
	Oid			relid = RelationGetRelid(rel);

	if (f == NULL || f->query->estate == NULL)
		return false;
	examine(f);
	if (f->targets == NIL ||
		(!list_member_oid(f->targets, relid) && !list_member_oid(f->targets, collection)))
		return false;

	resolve_held(f, false);
	if (f->held_size < len)
	{
		if (f->held)
			pfree(f->held);
		f->held = MemoryContextAlloc(f->query->estate->es_query_cxt, len);
		f->held_size = len;
	}
	memcpy(f->held, msg, len);
	f->held_len = len;
	f->held_relid = relid;
	f->held_processed = f->query->estate->es_processed;
	return true;
}

/* Called by the trigger for a pre_save update on rel: a conflict path. */
void
coco_upsert_conflict(Relation rel)
{
	RunFrame   *f = current;

	if (f != NULL && f->held_len > 0 && f->held_relid == RelationGetRelid(rel))
		f->held_len = 0;
}

static void
executor_run(COCO_EXECUTOR_RUN_PARAMS)
{
	RunFrame	frame = {0};

	frame.query = queryDesc;
	frame.outer = current;
	current = &frame;
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(COCO_EXECUTOR_RUN_ARGS);
		else
			standard_ExecutorRun(COCO_EXECUTOR_RUN_ARGS);
	}
	PG_CATCH();
	{
		/* on error, the held create goes out as any pre_save does */
		resolve_held(&frame, true);
		current = frame.outer;
		PG_RE_THROW();
	}
	PG_END_TRY();
	resolve_held(&frame, false);
	current = frame.outer;
}

void
coco_upsert_tracker_init(void)
{
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = executor_run;
}
