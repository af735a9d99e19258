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
 * (worker_marks.c); it holds queued events until its WAL reader has read
 * that far.
 *
 * Runs in: backends (from utility_hook.c, around the statement).
 *
 * Invariants: every begin that returned true is followed by one end,
 * whether the statement succeeded or failed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "nodes/parsenodes.h"

#include "commit_prepared.h"
#include "settings.h"
#include "worker_marks.h"

/* Before a statement: true if it is a COMMIT PREPARED the worker must know of. */
bool
coco_commit_prepared_begin(Node *stmt)
{
	if (!coco_wal_mode() || !IsA(stmt, TransactionStmt) ||
		((TransactionStmt *) stmt)->kind != TRANS_STMT_COMMIT_PREPARED)
		return false;
	coco_marks_commit_prepared_begin();
	return true;
}

/* After it, succeeded or failed. */
void
coco_commit_prepared_end(void)
{
	/* the COMMIT PREPARED record is the last this transaction wrote */
	coco_marks_commit_prepared_end(XactLastRecEnd);
}
