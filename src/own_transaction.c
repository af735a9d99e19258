/*-------------------------------------------------------------------------
 *
 * own_transaction.c
 *	  Work in a transaction or subtransaction of its own, whose error is
 *	  handed back rather than raised.
 *
 * The worker reads and writes its tables between deliveries, in short
 * transactions; an error there (a lock timeout, a table dropped under it)
 * must not stop it: it is written to the server log, the transaction is
 * rolled back, and the caller tries again later (coco_in_own_transaction).
 * A backend that must not fail on an error of some step (a row filter that
 * calls a user's function, a filter compiled for a restore) runs it in a
 * subtransaction, which rolling back undoes whatever the step left behind,
 * and gets the error back (coco_in_subtransaction).
 *
 * Runs in: the worker (transactions), backends (subtransactions).
 *
 * Invariants: coco_in_own_transaction is called outside any transaction,
 * coco_in_subtransaction inside one; both return in the memory context and
 * (a subtransaction) with the resource owner they were called with.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "own_transaction.h"

/*
 * Runs fn(arg) in a transaction of its own, with a snapshot; returns
 * whether it committed (false: the error was reported).
 */
bool
coco_in_own_transaction(void (*fn) (void *arg), void *arg)
{
	return coco_in_own_transaction_error(fn, arg, NULL);
}

/*
 * As coco_in_own_transaction, and when it fails, *error (if not NULL) is
 * its message, palloc'd in the caller's memory context.
 */
bool
coco_in_own_transaction_error(void (*fn) (void *arg), void *arg, char **error)
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
		if (error != NULL)
		{
			ErrorData  *edata = CopyErrorData();

			*error = edata->message ? pstrdup(edata->message) : pstrdup("unknown error");
			FreeErrorData(edata);
		}
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		committed = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return committed;
}

/*
 * Runs fn(arg) in a subtransaction of the current transaction; NULL if it
 * committed, else its error, copied into the caller's memory context, the
 * subtransaction rolled back.
 */
ErrorData *
coco_in_subtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}
