/*-------------------------------------------------------------------------
 *
 * process_utility.h
 *	  Chaining our ProcessUtility hooks (commit_prepared.c,
 *	  database_pause.c) to the next one.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PROCESS_UTILITY_H
#define PROCESS_UTILITY_H

#include "tcop/utility.h"

extern void coco_next_process_utility(ProcessUtility_hook_type prev, PlannedStmt *pstmt,
									  const char *queryString, bool readOnlyTree,
									  ProcessUtilityContext context, ParamListInfo params,
									  QueryEnvironment *queryEnv, DestReceiver *dest,
									  QueryCompletion *qc);

#endif							/* PROCESS_UTILITY_H */
