/*-------------------------------------------------------------------------
 *
 * own_transaction.c
 *	  A background process's short transaction of its own, whose error is
 *	  reported rather than raised.
 *
 * The worker reads and writes its tables between deliveries, in short
 * transactions; an error there (a lock timeout, a table dropped under it)
 * must not stop it: it is written to the server log, the transaction is
 * rolled back, and the caller tries again later.
 *
 * Runs in: the worker.
 *
 * Invariants: called outside any transaction; returns in the memory
 * context it was called in.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "own_transaction.h"

/*
 * Runs fn(arg) in a transaction of its own, with a snapshot; returns
 * whether it committed (false: the error was reported).
 */
bool
coco_in_own_transaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool committed = true;

	Assert(!IsTransactionState());
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		fn(arg);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		committed = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return committed;
}
