/*-------------------------------------------------------------------------
 *
 * pending_events.c
 *	  post_* event messages of the current transaction, held until it
 *	  commits.
 *
 * Messages are appended in order to an in-memory tail of up to work_mem.
 * When the tail is full it is written, in one write, to the end of a
 * temporary file, so a transaction that writes millions of hooked rows holds
 * a bounded amount of memory and costs one system call per work_mem of
 * messages.  The messages are the file's first file_len bytes followed by
 * the tail.  A stack of (nesting level, offset) marks where each open
 * subtransaction's messages begin, so a rolled-back savepoint cuts its
 * messages off.
 *
 * With cocohooks.durability = wal every message is already in the WAL
 * with its transaction, and the copies kept here only spare the worker's
 * WAL reader some work and latency.  So in wal mode a transaction whose
 * messages outgrow the tail keeps none: it writes no temporary file, and
 * the worker reads all its events from the WAL after the commit.  That
 * saves the bulk write twice over (to the file and into the queue).  Its
 * later events are also written to the WAL in batches of about
 * WAL_BATCH_BYTES, one logical message each (prefix COCO_WAL_BATCH_PREFIX),
 * which costs far less than a record per event; the worker names each
 * batched event by its own position in the record.  A message is written
 * under the (sub)transaction that is current, and the WAL's order is the
 * order the worker delivers in, so:
 *
 *	each subtransaction level has its own batch, written when full and
 *	before its subtransaction commits (or the transaction commits or
 *	prepares), thrown away when its subtransaction aborts;
 *
 *	when a subtransaction starts, its parent's batch is written first (under
 *	the new subtransaction's xid: the parent's events thus come before the
 *	child's in the WAL) and kept aside; if the subtransaction aborts, taking
 *	that record with it, they become the parent's batch again.
 *
 * A rolled-back savepoint's events are never delivered, and no event is
 * lost with a savepoint it was not written in.
 *
 * At XACT_EVENT_COMMIT, after the commit record is written, the messages
 * are pushed into the shared queue; at abort they are thrown away.  An
 * abort that happens at commit time (a deferred constraint, a serialization
 * failure) reaches the abort path, so no post_* event of it is delivered.
 * The commit callback must not fail: it only copies bytes, catches any
 * error from reading the file, and counts what it cannot queue as dropped.
 *
 * PREPARE TRANSACTION with pending messages is refused in memory mode: a
 * prepared transaction commits in another session that knows nothing of
 * them.  In wal mode the messages are in the WAL with their transaction,
 * and the worker's WAL reader delivers them once it reads COMMIT PREPARED.
 *
 * Runs in: backends (the row trigger, redeliver() in memory mode, and the
 * transaction callbacks, which every process that preloads the library
 * has but which act only where messages were added).
 *
 * Invariants:
 *	- all of it lives in pending_cxt, under TopMemoryContext, reset when
 *	  the transaction ends; the temporary file belongs to the top
 *	  transaction's resource owner;
 *	- memory is bounded: the tail is flushed before it would pass work_mem
 *	  (and 256 MB), a batch once it reaches WAL_BATCH_BYTES;
 *	- adding may raise an error (a full disk, the WAL), so only the trigger
 *	  and redeliver() add, before commit; the commit callback never raises;
 *	- messages reach the ring in the order they were added.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/wait_event.h"

#include "cocohooks.h"
#include "event_ring.h"
#include "pending_events.h"
#include "pg_compat.h"
#include "settings.h"
#include "worker_marks.h"

typedef struct SubxactMark
{
	int			nest_level;
	uint64		offset;
	uint64		count;
} SubxactMark;

static MemoryContext pending_cxt = NULL;
static StringInfoData mem;		/* the tail of the messages */
static File spill = -1;			/* the messages before the tail, if any */
static uint64 file_len = 0;		/* how many bytes of the file are messages */
static uint64 pending_bytes = 0;
static uint64 pending_count = 0;
static SubxactMark *marks = NULL;
static int	nmarks = 0;
static int	maxmarks = 0;
static uint64 dropped_in_xact = 0;
static bool wal_only = false;	/* copies given up: the WAL has them all */
/* wal_only: events not yet in the WAL, a batch per subtransaction level */
typedef struct Batch
{
	int			nest_level;
	StringInfoData buf;
	StringInfoData parents;		/* the parent's, written under this level */
} Batch;

static Batch *batches = NULL;
static int	nbatches = 0;
static int	maxbatches = 0;

#define WAL_BATCH_BYTES	(64 * 1024)

/* biggest chunk pushed under one hold of the queue lock */
#define PUSH_CHUNK		(256 * 1024)

/* how much of the temporary file is read at a time at commit */
#define READ_CHUNK		((Size) 1024 * 1024)

/* the tail never grows past this (work_mem may be set above what palloc allows) */
#define MAX_TAIL		((Size) 256 * 1024 * 1024)

static void
reset_pending(void)
{
	if (spill >= 0)
		FileClose(spill);
	spill = -1;
	file_len = 0;
	pending_bytes = 0;
	pending_count = 0;
	nmarks = 0;
	marks = NULL;
	maxmarks = 0;
	mem.data = NULL;
	batches = NULL;
	nbatches = maxbatches = 0;
	wal_only = false;
	if (pending_cxt)
		MemoryContextReset(pending_cxt);
}

void
coco_note_dropped(uint64 n)
{
	coco_ring_count_dropped(n);
	dropped_in_xact += n;
}

static void
report_dropped(void)
{
	if (dropped_in_xact > 0)
		ereport(LOG,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("cocohooks dropped %llu events because its queue was full",
						(unsigned long long) dropped_in_xact),
				 errhint("Increase \"cocohooks.queue_size\", or check that the cocohooks worker is running and its receivers answer.")));
	dropped_in_xact = 0;
}

/* Writes the tail to the end of the temporary file, creating it if need be. */
static void
flush_tail(void)
{
	int			written;

	if (spill < 0)
	{
		ResourceOwner save_owner = CurrentResourceOwner;

		/* the file must outlive subtransactions, like the transaction's messages */
		CurrentResourceOwner = TopTransactionResourceOwner;
		PG_TRY();
		{
			spill = OpenTemporaryFile(false);
		}
		PG_FINALLY();
		{
			CurrentResourceOwner = save_owner;
		}
		PG_END_TRY();
	}

	errno = 0;
	written = FileWrite(spill, mem.data, mem.len, (off_t) file_len,
						WAIT_EVENT_BUFFILE_WRITE);
	if (written != mem.len)
	{
		if (written >= 0 && errno == 0)
			errno = ENOSPC;		/* a short write is most likely a full disk */
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write to cocohooks temporary file: %m")));
	}
	file_len += mem.len;
	resetStringInfo(&mem);
}

static void
remember_subxact(void)
{
	int			level = GetCurrentTransactionNestLevel();

	if (level <= 1 || (nmarks > 0 && marks[nmarks - 1].nest_level >= level))
		return;
	if (nmarks == maxmarks)
	{
		maxmarks = Max(8, maxmarks * 2);
		marks = marks ? repalloc(marks, sizeof(SubxactMark) * maxmarks) :
			MemoryContextAlloc(pending_cxt, sizeof(SubxactMark) * maxmarks);
	}
	marks[nmarks].nest_level = level;
	marks[nmarks].offset = pending_bytes;
	marks[nmarks].count = pending_count;
	nmarks++;
}

/* Appends one message; may raise an error, so call it from the trigger. */
void
coco_pending_add(const char *message, Size len)
{
	if (pending_cxt == NULL)
		pending_cxt = AllocSetContextCreate(TopMemoryContext,
											"cocohooks pending events",
											ALLOCSET_DEFAULT_SIZES);
	remember_subxact();

	if (mem.data == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(pending_cxt);

		initStringInfo(&mem);
		MemoryContextSwitchTo(old);
	}
	if (!wal_only && mem.len > 0 &&
		(Size) mem.len + len > Min((Size) work_mem * 1024, MAX_TAIL))
	{
		if (coco_wal_mode())
		{
			/* the worker reads this transaction's events from the WAL */
			wal_only = true;
			resetStringInfo(&mem);
		}
		else
			flush_tail();
	}
	if (!wal_only)
		appendBinaryStringInfo(&mem, message, len);
	pending_bytes += len;
	pending_count++;
}

/* True once this transaction keeps no copies: its events go in batches. */
bool
coco_pending_batching(void)
{
	return wal_only;
}

/* The batch of the current level, made if missing. */
static Batch *
current_batch(void)
{
	int			level = GetCurrentTransactionNestLevel();
	MemoryContext old;

	if (nbatches > 0 && batches[nbatches - 1].nest_level == level)
		return &batches[nbatches - 1];
	old = MemoryContextSwitchTo(pending_cxt);
	if (nbatches == maxbatches)
	{
		maxbatches = Max(4, maxbatches * 2);
		batches = batches ? repalloc(batches, sizeof(Batch) * maxbatches) :
			palloc(sizeof(Batch) * maxbatches);
	}
	batches[nbatches].nest_level = level;
	initStringInfo(&batches[nbatches].buf);
	initStringInfo(&batches[nbatches].parents);
	nbatches++;
	MemoryContextSwitchTo(old);
	return &batches[nbatches - 1];
}

/* Writes a batch's events to the WAL, under the current (sub)transaction. */
static void
write_batch(StringInfo buf)
{
	if (buf->len > 0)
		(void) coco_log_logical_message(COCO_WAL_BATCH_PREFIX, buf->data, buf->len, true);
	resetStringInfo(buf);
}

/* The current level is done with (its subtransaction commits or aborts). */
static void
pop_batch(void)
{
	pfree(batches[nbatches - 1].buf.data);
	pfree(batches[nbatches - 1].parents.data);
	nbatches--;
}

/* Whether the top batch is the current level's. */
static bool
at_current_level(void)
{
	return nbatches > 0 &&
		batches[nbatches - 1].nest_level == GetCurrentTransactionNestLevel();
}

/*
 * Appends one message (built with the placeholder id) to the batch, once
 * coco_pending_batching(); may raise an error, so call it from the trigger.
 */
void
coco_pending_add_batched(const char *message, Size len)
{
	Batch	   *b;

	remember_subxact();
	b = current_batch();
	appendBinaryStringInfo(&b->buf, message, len);
	pending_bytes += len;
	pending_count++;
	if (b->buf.len >= WAL_BATCH_BYTES)
		write_batch(&b->buf);
}

/* Drops the messages after offset (a rolled-back subtransaction's). */
static void
truncate_pending(uint64 offset, uint64 count)
{
	pending_bytes = offset;
	pending_count = count;
	if (wal_only)
		return;					/* no copies kept; the WAL reader sees the abort */
	if (offset < file_len)
	{
		/* later writes overwrite the file from here */
		file_len = offset;
		offset = 0;
	}
	else
		offset -= file_len;
	if (mem.data)
	{
		mem.len = (int) offset;
		mem.data[mem.len] = '\0';
	}
}

/*
 * Pushes the whole messages at the start of data[0..len) into the queue, at
 * most PUSH_CHUNK bytes under one hold of its lock.  Returns how many
 * messages were queued; sets *used to the bytes of whole messages it went
 * through, and *full when the queue refused some.
 */
static uint64
push_messages(const char *data, Size len, Size *used, bool *full)
{
	Size		off = 0;
	uint64		pushed = 0;

	while (off + sizeof(CocoEventHeader) <= len && !*full)
	{
		Size		chunk = 0;
		int			n = 0;
		int			done;

		while (off + chunk + sizeof(CocoEventHeader) <= len)
		{
			uint32		msglen = ((const CocoEventHeader *) (data + off + chunk))->total_len;

			if (off + chunk + msglen > len || (n > 0 && chunk + msglen > PUSH_CHUNK))
				break;
			chunk += msglen;
			n++;
		}
		if (n == 0)
			break;				/* a message continues past len */
		done = coco_ring_push(data + off, chunk);
		pushed += done;
		*full = (done < n);
		off += chunk;
	}
	*used = off;
	return pushed;
}

/*
 * Pushes every pending message into the queue.  Runs after commit: never
 * raises an error; what cannot be queued is counted as dropped.
 */
static void
push_pending(void)
{
	volatile uint64 pushed = 0;

	if (pending_count == 0)
		return;

	if (wal_only)
	{
		/* the worker reads them from the WAL */
		coco_marks_note_wal_only(XactLastCommitEnd);
		return;
	}
	if (file_len > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(pending_cxt);

		PG_TRY();
		{
			Size		bufsize = READ_CHUNK;
			char	   *buf = palloc(bufsize);
			Size		have = 0;
			Size		used;
			uint64		read_at = 0;
			bool		full = false;

			/* read the file in big pieces; a message cut at a piece's end moves to the front */
			while (read_at < file_len && !full)
			{
				int			want = (int) Min(bufsize - have, file_len - read_at);

				if (FileRead(spill, buf + have, want, (off_t) read_at,
							 WAIT_EVENT_BUFFILE_READ) != want)
					ereport(ERROR,
							(errcode_for_file_access(),
							 errmsg("could not read cocohooks temporary file: %m")));
				read_at += want;
				have += want;
				pushed += push_messages(buf, have, &used, &full);
				if (used == 0 && have == bufsize)
				{
					/* one message bigger than the buffer */
					bufsize *= 2;
					buf = repalloc(buf, bufsize);
				}
				memmove(buf, buf + used, have - used);
				have -= used;
			}
			if (!full)
				pushed += push_messages(mem.data, mem.len, &used, &full);
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
	}
	else
	{
		Size		used;
		bool		full = false;

		pushed = push_messages(mem.data, mem.len, &used, &full);
	}

	if (pushed < pending_count)
	{
		/* in the WAL, the worker's reader finds them */
		if (coco_wal_mode())
			coco_marks_note_wal_only(XactLastCommitEnd);
		else
			coco_note_dropped(pending_count - pushed);
	}
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (at_current_level())
				write_batch(&batches[nbatches - 1].buf);
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (at_current_level())
				write_batch(&batches[nbatches - 1].buf);
			/* in the WAL, they are delivered when COMMIT PREPARED is read */
			if (pending_count > 0 && !coco_wal_mode())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has pending cocohooks events"),
						 errdetail("post_save and post_delete events are delivered when their transaction commits, and a prepared transaction commits elsewhere."),
						 errhint("Set \"%s\" to \"wal\", commit without two-phase commit, or make these writes with \"%s\" off.",
								 "cocohooks.durability", "cocohooks.api_session")));
			break;
		case XACT_EVENT_COMMIT:
			push_pending();
			reset_pending();
			report_dropped();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			reset_pending();
			report_dropped();
			break;
		default:
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId my_subid,
				 SubTransactionId parent_subid, void *arg)
{
	int			level;

	/* a batch belongs to one subtransaction (see the top of this file) */
	if (event == SUBXACT_EVENT_START_SUB && nbatches > 0 &&
		batches[nbatches - 1].nest_level == GetCurrentTransactionNestLevel() - 1 &&
		batches[nbatches - 1].buf.len > 0)
	{
		Batch	   *child = current_batch();
		Batch	   *parent = &batches[nbatches - 2];	/* after: the array may move */

		appendBinaryStringInfo(&child->parents, parent->buf.data, parent->buf.len);
		write_batch(&parent->buf);
	}
	else if (event == SUBXACT_EVENT_PRE_COMMIT_SUB && at_current_level())
	{
		write_batch(&batches[nbatches - 1].buf);
		pop_batch();
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB && at_current_level())
	{
		/* the parent's events went with this level's xid: the parent's again */
		Batch	   *child = &batches[nbatches - 1];

		if (child->parents.len > 0 && nbatches >= 2)
			appendBinaryStringInfo(&batches[nbatches - 2].buf,
								   child->parents.data, child->parents.len);
		pop_batch();
	}

	if (nmarks == 0)
		return;
	level = GetCurrentTransactionNestLevel();
	if (marks[nmarks - 1].nest_level != level)
		return;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		truncate_pending(marks[nmarks - 1].offset, marks[nmarks - 1].count);
		nmarks--;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* the parent now owns these messages, from the same starting point */
		if (nmarks >= 2 && marks[nmarks - 2].nest_level == level - 1)
			nmarks--;
		else
			marks[nmarks - 1].nest_level = level - 1;
		if (marks[nmarks - 1].nest_level <= 1)
			nmarks--;
	}
}

void
coco_pending_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}

