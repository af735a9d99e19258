/*-------------------------------------------------------------------------
 *
 * commit_prepared.c
 *	  COMMIT PREPARED and document order (cocohooks.durability = wal).
 *
 * A prepared transaction's post_* events are only in the WAL, and COMMIT
 * PREPARED releases its row locks before the statement returns.  A later
 * write of the same document may then queue its event at once; the worker
 * must not send that one before its WAL reader has handed on the prepared
 * transaction's events.  So, around COMMIT PREPARED, the worker is told
 * that one is running, and then where its commit record ended
 * (coco_queue_commit_prepared_begin/end); it holds queued events until its
 * WAL reader has read that far.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include "access/xlog.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "process_utility.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * Runs a utility statement through the hook installed before ours (prev),
 * or PostgreSQL's own; for each of our ProcessUtility hooks.
 */
void
coco_next_process_utility(ProcessUtility_hook_type prev, PlannedStmt *pstmt,
						  const char *queryString, bool readOnlyTree,
						  ProcessUtilityContext context, ParamListInfo params,
						  QueryEnvironment *queryEnv, DestReceiver *dest,
						  QueryCompletion *qc)
{
	if (prev)
		prev(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	bool		commit_prepared = coco_wal_mode() && IsA(stmt, TransactionStmt) &&
		((TransactionStmt *) stmt)->kind == TRANS_STMT_COMMIT_PREPARED;

	if (!commit_prepared)
	{
		coco_next_process_utility(prev_process_utility, pstmt, queryString, readOnlyTree,
								  context, params, queryEnv, dest, qc);
		return;
	}

	coco_queue_commit_prepared_begin();
	PG_TRY();
	{
		coco_next_process_utility(prev_process_utility, pstmt, queryString, readOnlyTree,
								  context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		/* the COMMIT PREPARED record is the last this transaction wrote */
		coco_queue_commit_prepared_end(XactLastRecEnd);
	}
	PG_END_TRY();
}

void
coco_commit_prepared_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}
