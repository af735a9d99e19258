/*-------------------------------------------------------------------------
 *
 * utility_hook.c
 *	  Our one ProcessUtility hook: the utility statements cocohooks acts
 *	  around.
 *
 * COMMIT PREPARED tells the worker where its events end in the WAL
 * (commit_prepared.c); a statement that needs another database to itself
 * stops that database's worker first and lets it start again after
 * (database_pause.c).  Both act before and after the statement, whether
 * it succeeds or fails; one hook runs the statement for both, through the
 * hook installed before ours or PostgreSQL's own.
 *
 * Runs in: backends.
 *
 * Invariants: no statement is run twice or skipped; an error in the
 * statement is raised again after the after-work.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tcop/utility.h"

#include "commit_prepared.h"
#include "database_pause.h"
#include "utility_hook.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

static void
run_statement(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			  ProcessUtilityContext context, ParamListInfo params,
			  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
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
	CocoDbPause pause;
	bool		commit_prepared = coco_commit_prepared_begin(stmt);
	bool		paused = !commit_prepared && coco_database_pause_begin(stmt, &pause);

	if (!commit_prepared && !paused)
	{
		run_statement(pstmt, queryString, readOnlyTree, context, params,
					  queryEnv, dest, qc);
		return;
	}

	PG_TRY();
	{
		run_statement(pstmt, queryString, readOnlyTree, context, params,
					  queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (commit_prepared)
			coco_commit_prepared_end();
		else
			coco_database_pause_failed(&pause);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (commit_prepared)
		coco_commit_prepared_end();
	else
		coco_database_pause_end(&pause);
}

void
coco_utility_hook_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}
