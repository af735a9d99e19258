/*-------------------------------------------------------------------------
 *
 * wal_scan.c
 *	  The scan cursor of the worker's WAL reader: reads every record once
 *	  and turns committed transactions into jobs.
 *
 * Backends write every event into the WAL as a logical message with prefix
 * "cocohooks" (event_emit.c): post_* ones transactionally, under the xid of
 * the (sub)transaction that wrote the row; pre_* ones not.  The scan looks
 * only at record headers, at our own messages and at the transactions'
 * commit and abort records, in two steps, the way PostgreSQL's logical
 * decoding has decode.c classify records and reorderbuffer.c assemble
 * transactions by xid:
 *
 *	classifying (scan_record): a record is one of our messages, a commit or
 *	abort record, or of no interest;
 *
 *	assembling: a transactional message only marks its xid as open, with
 *	the position of its first message; a commit (or COMMIT PREPARED)
 *	record turns the open xids it names (the transaction and its committed
 *	subtransactions) into a job: the range from their first message to the
 *	commit and the set of xids; an abort (or ROLLBACK PREPARED) forgets
 *	them.  A non-transactional message is a job of its own.
 *
 * Runs in the worker only.  Invariants: jobs are appended in commit order
 * (the order of their commit records), and no more than WAL_MAX_JOBS wait
 * (the scan pauses there).  An open xid whose transaction a crash cut short
 * has no commit or abort record to come: once the scan has reached the end
 * of the WAL, open xids that are neither running, prepared nor committed are
 * forgotten.  Everything lives in the WAL source's memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "storage/procarray.h"

#include "cocohooks.h"
#include "wal_internal.h"
#include "wal_scan.h"

#define SCAN_RECORDS_PER_PASS	20000
#define CRASHED_CHECK_MS		1000

typedef struct OpenXact
{
	TransactionId xid;			/* hash key */
	XLogRecPtr	first_lsn;		/* start of its first message */
} OpenXact;

static XLogReaderState *scan_reader = NULL;
static ReadLocalXLogPageNoWaitPrivate scan_private;
static HTAB *open_xacts = NULL;
static TimestampTz last_crashed_check = 0;

static int
xid_compare(const void *a, const void *b)
{
	TransactionId x = *(const TransactionId *) a;
	TransactionId y = *(const TransactionId *) b;

	return (x > y) - (x < y);
}

bool
coco_wal_job_has_xid(const WalJob *job, TransactionId xid)
{
	return bsearch(&xid, job->xids, job->nxids, sizeof(TransactionId),
				   xid_compare) != NULL;
}

/* A reader of the local WAL that does not wait for more to be written. */
XLogReaderState *
coco_wal_reader_allocate(ReadLocalXLogPageNoWaitPrivate *private)
{
	XLogReaderState *r;

	r = XLogReaderAllocate(wal_segment_size, NULL,
						   XL_ROUTINE(.page_read = read_local_xlog_page_no_wait,
									  .segment_open = wal_segment_open,
									  .segment_close = wal_segment_close),
						   private);
	if (r == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while allocating a WAL reading processor.")));
	return r;
}

/*
 * Starts scanning at start (the slot's restart point), with no open
 * transactions and no jobs.  Called in the WAL source's memory context.
 */
void
coco_wal_scan_begin(XLogRecPtr start)
{
	open_xacts = coco_wal_hash_create("cocohooks open transactions", 256,
									  sizeof(TransactionId), sizeof(OpenXact));
	scan_reader = coco_wal_reader_allocate(&scan_private);
	coco_wal_state.scan_next = start;
	coco_wal_state.scan_positioned = false;
	coco_wal_state.scan_at_end = false;
	dlist_init(&coco_wal_state.jobs);
	coco_wal_state.njobs = 0;
	coco_wal_state.first_unread = NULL;
}

/* Stops scanning (the jobs stay, for events still in the engine). */
void
coco_wal_scan_end(void)
{
	XLogReaderFree(scan_reader);
	scan_reader = NULL;
}

/* The start of the first message of the oldest open transaction, or bound. */
XLogRecPtr
coco_wal_scan_oldest_open(XLogRecPtr bound)
{
	HASH_SEQ_STATUS status;
	OpenXact   *ox;

	hash_seq_init(&status, open_xacts);
	while ((ox = hash_seq_search(&status)) != NULL)
		bound = Min(bound, ox->first_lsn);
	return bound;
}

/*
 * The payload of a record if it is one of our event messages, of any
 * database (*dboid says which), else NULL.
 */
const char *
coco_wal_event_message(XLogReaderState *r, Oid *dboid, Size *len,
					   bool *transactional, bool *batch)
{
	xl_logical_message *m;

	if (XLogRecGetRmid(r) != RM_LOGICALMSG_ID ||
		(XLogRecGetInfo(r) & ~XLR_INFO_MASK) != XLOG_LOGICAL_MESSAGE)
		return NULL;
	m = (xl_logical_message *) XLogRecGetData(r);
	if (m->prefix_size == sizeof(COCO_WAL_PREFIX) && strcmp(m->message, COCO_WAL_PREFIX) == 0)
		*batch = false;
	else if (m->prefix_size == sizeof(COCO_WAL_BATCH_PREFIX) &&
			 strcmp(m->message, COCO_WAL_BATCH_PREFIX) == 0)
		*batch = true;
	else
		return NULL;
	*dboid = m->dbId;
	*len = m->message_size;
	*transactional = m->transactional;
	return m->message + m->prefix_size;
}

/*
 * The payload of a record if it is one of our messages in this database,
 * else NULL.
 */
const char *
coco_wal_our_message(XLogReaderState *r, Size *len, bool *transactional, bool *batch)
{
	Oid			dboid;
	const char *payload = coco_wal_event_message(r, &dboid, len, transactional, batch);

	return payload != NULL && dboid == MyDatabaseId ? payload : NULL;
}

/*
 * Assembling transactions
 */

static WalJob *
new_job(XLogRecPtr first, XLogRecPtr end, TimestampTz commit_time,
		const TransactionId *xids, int nxids)
{
	WalJob	   *job = MemoryContextAllocZero(coco_wal_state.cxt,
											 offsetof(WalJob, xids) + sizeof(TransactionId) * Max(nxids, 1));

	job->first_lsn = first;
	job->end_lsn = end;
	job->next_lsn = first;
	job->commit_time = commit_time;
	job->nxids = nxids;
	if (nxids > 0)
	{
		memcpy(job->xids, xids, sizeof(TransactionId) * nxids);
		qsort(job->xids, nxids, sizeof(TransactionId), xid_compare);
	}
	dlist_push_tail(&coco_wal_state.jobs, &job->node);
	coco_wal_state.njobs++;
	if (coco_wal_state.first_unread == NULL)
		coco_wal_state.first_unread = job;
	return job;
}

/* A transactional message: its xid is open from its first message on. */
static void
xact_message(XLogReaderState *r)
{
	TransactionId xid = XLogRecGetXid(r);
	bool		found;
	OpenXact   *ox = hash_search(open_xacts, &xid, HASH_ENTER, &found);

	if (!found)
		ox->first_lsn = r->ReadRecPtr;
}

/*
 * A commit record: the open xids among the transaction and its committed
 * subtransactions become one job.
 */
static void
xact_commit(XLogReaderState *r, TransactionId top, TransactionId *subxacts,
			int nsubxacts, TimestampTz commit_time)
{
	TransactionId *found = NULL;
	int			nfound = 0;
	XLogRecPtr	first = InvalidXLogRecPtr;

	for (int i = -1; i < nsubxacts; i++)
	{
		TransactionId xid = i < 0 ? top : subxacts[i];
		OpenXact   *ox;

		if (!TransactionIdIsValid(xid))
			continue;
		ox = hash_search(open_xacts, &xid, HASH_FIND, NULL);
		if (ox == NULL)
			continue;
		if (found == NULL)
			found = palloc(sizeof(TransactionId) * (nsubxacts + 1));
		found[nfound++] = xid;
		if (XLogRecPtrIsInvalid(first) || ox->first_lsn < first)
			first = ox->first_lsn;
		hash_search(open_xacts, &xid, HASH_REMOVE, NULL);
	}
	if (nfound > 0)
	{
		new_job(first, r->EndRecPtr, commit_time, found, nfound);
		pfree(found);
	}
}

static void
xact_abort(TransactionId top, TransactionId *subxacts, int nsubxacts)
{
	if (TransactionIdIsValid(top))
		hash_search(open_xacts, &top, HASH_REMOVE, NULL);
	for (int i = 0; i < nsubxacts; i++)
		hash_search(open_xacts, &subxacts[i], HASH_REMOVE, NULL);
}

/*
 * Open xids with no commit or abort record to come: their transaction was
 * cut short by a crash.  Checked when the scan has reached the end of the
 * WAL; a committed xid whose commit record is not flushed yet stays.
 */
static void
forget_crashed_xacts(void)
{
	HASH_SEQ_STATUS status;
	OpenXact   *ox;

	TimestampTz now = GetCurrentTimestamp();

	if (hash_get_num_entries(open_xacts) == 0 ||
		!TimestampDifferenceExceeds(last_crashed_check, now, CRASHED_CHECK_MS))
		return;
	last_crashed_check = now;
	hash_seq_init(&status, open_xacts);
	while ((ox = hash_seq_search(&status)) != NULL)
	{
		if (!TransactionIdIsInProgress(ox->xid) && !TransactionIdDidCommit(ox->xid))
			hash_search(open_xacts, &ox->xid, HASH_REMOVE, NULL);
	}
}

/*
 * Classifying records
 */

static void
scan_record(XLogReaderState *r)
{
	Size		len;
	bool		transactional;
	bool		batch;
	uint8		info;

	if (coco_wal_our_message(r, &len, &transactional, &batch) != NULL)
	{
		if (transactional)
			xact_message(r);
		else
			new_job(r->ReadRecPtr, r->EndRecPtr, GetCurrentTimestamp(), NULL, 0);
		return;
	}
	if (XLogRecGetRmid(r) != RM_XACT_ID)
		return;

	/* with no transaction open, a commit or abort makes no difference */
	info = XLogRecGetInfo(r) & XLOG_XACT_OPMASK;
	if (info == XLOG_XACT_COMMIT || info == XLOG_XACT_COMMIT_PREPARED)
	{
		xl_xact_parsed_commit parsed;

		if (hash_get_num_entries(open_xacts) == 0)
			return;
		ParseCommitRecord(XLogRecGetInfo(r), (xl_xact_commit *) XLogRecGetData(r), &parsed);
		xact_commit(r, info == XLOG_XACT_COMMIT_PREPARED ? parsed.twophase_xid : XLogRecGetXid(r),
					parsed.subxacts, parsed.nsubxacts, parsed.xact_time);
	}
	else if (info == XLOG_XACT_ABORT || info == XLOG_XACT_ABORT_PREPARED)
	{
		xl_xact_parsed_abort parsed;

		if (hash_get_num_entries(open_xacts) == 0)
			return;
		ParseAbortRecord(XLogRecGetInfo(r), (xl_xact_abort *) XLogRecGetData(r), &parsed);
		xact_abort(info == XLOG_XACT_ABORT_PREPARED ? parsed.twophase_xid : XLogRecGetXid(r),
				   parsed.subxacts, parsed.nsubxacts);
	}
}

/* Reads new WAL records with the scan cursor, a bounded number per call. */
void
coco_wal_scan(void)
{
	WalSourceState *st = &coco_wal_state;
	MemoryContext old;
	char	   *errormsg;

	if (!st->active)
		return;
	old = MemoryContextSwitchTo(st->cxt);
	st->scan_at_end = false;
	if (!st->scan_positioned)
	{
		XLogRecPtr	start;

		scan_private.end_of_wal = false;
		start = XLogFindNextRecord(scan_reader, st->scan_next);
		if (XLogRecPtrIsInvalid(start))
		{
			st->scan_at_end = true;
			MemoryContextSwitchTo(old);
			return;
		}
		XLogBeginRead(scan_reader, start);
		st->scan_next = start;
		st->scan_positioned = true;
	}

	for (int i = 0; i < SCAN_RECORDS_PER_PASS && st->njobs < WAL_MAX_JOBS; i++)
	{
		XLogRecord *rec;

		/*
		 * Nothing flushed past the last record: stop here rather than fail
		 * a read, which makes the reader reopen the segment next time (and
		 * read its first page again) on every pass.
		 */
		if (st->scan_next >= GetFlushRecPtr(NULL))
		{
			st->scan_at_end = true;
			forget_crashed_xacts();
			break;
		}
		scan_private.end_of_wal = false;
		rec = XLogReadRecord(scan_reader, &errormsg);
		if (rec == NULL)
		{
			if (!scan_private.end_of_wal && errormsg)
				ereport(WARNING,
						(errmsg("cocohooks could not read WAL at %X/%X: %s",
								LSN_FORMAT_ARGS(st->scan_next), errormsg)));
			/* read again from the same record next time */
			XLogBeginRead(scan_reader, st->scan_next);
			st->scan_at_end = true;
			forget_crashed_xacts();
			break;
		}
		scan_record(scan_reader);
		st->scan_next = scan_reader->EndRecPtr;
	}
	MemoryContextSwitchTo(old);
}
