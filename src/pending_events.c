/*-------------------------------------------------------------------------
 *
 * pending_events.c
 *	  post_* event messages of the current transaction, held until it
 *	  commits.
 *
 * Messages are appended in order.  They live in memory up to work_mem and
 * beyond that in a temporary file, so a transaction that writes millions of
 * hooked rows holds a bounded amount of memory.  A stack of (nesting level,
 * offset) marks where each open subtransaction's messages begin, so a
 * rolled-back savepoint cuts its messages off.
 *
 * At XACT_EVENT_COMMIT, after the commit record is written, the messages
 * are pushed into the shared queue; at abort they are thrown away.  An
 * abort that happens at commit time (a deferred constraint, a serialization
 * failure) reaches the abort path, so no post_* event of it is delivered.
 * The commit callback must not fail: it only copies bytes, catches any
 * error from reading the file, and counts what it cannot queue as dropped.
 *
 * PREPARE TRANSACTION with pending messages is refused: a prepared
 * transaction commits in another session that knows nothing of them.
 *
 *-------------------------------------------------------------------------
 */
#include "cocohooks.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/buffile.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

typedef struct SubxactMark
{
	int			nest_level;
	uint64		offset;
	uint64		count;
} SubxactMark;

static MemoryContext pending_cxt = NULL;
static StringInfoData mem;		/* messages while they fit in work_mem */
static BufFile *spill = NULL;	/* all messages once they do not */
static uint64 spill_end = 0;	/* logical end of the file */
static bool spill_at_end = true;	/* file position is spill_end */
static uint64 pending_bytes = 0;
static uint64 pending_count = 0;
static SubxactMark *marks = NULL;
static int	nmarks = 0;
static int	maxmarks = 0;
static uint64 dropped_in_xact = 0;

/* biggest chunk pushed under one hold of the queue lock */
#define PUSH_CHUNK		(256 * 1024)

static void
reset_pending(void)
{
	if (spill)
		BufFileClose(spill);
	spill = NULL;
	spill_end = 0;
	spill_at_end = true;
	pending_bytes = 0;
	pending_count = 0;
	nmarks = 0;
	marks = NULL;
	maxmarks = 0;
	mem.data = NULL;
	if (pending_cxt)
		MemoryContextReset(pending_cxt);
}

void
coco_note_dropped(uint64 n)
{
	coco_queue_count_dropped(n);
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

/* Moves the in-memory messages to a temporary file owned by the transaction. */
static void
start_spill(void)
{
	ResourceOwner save_owner = CurrentResourceOwner;
	MemoryContext old = MemoryContextSwitchTo(pending_cxt);

	/* the file must outlive subtransactions, like the transaction's messages */
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		spill = BufFileCreateTemp(false);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save_owner;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);

	BufFileWrite(spill, mem.data, mem.len);
	spill_end = mem.len;
	spill_at_end = true;
	pfree(mem.data);
	mem.data = NULL;
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

	if (spill == NULL)
	{
		if (mem.data == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(pending_cxt);

			initStringInfo(&mem);
			MemoryContextSwitchTo(old);
		}
		if ((uint64) mem.len + len > (uint64) work_mem * 1024 && mem.len > 0)
			start_spill();
	}

	if (spill == NULL)
		appendBinaryStringInfo(&mem, message, len);
	else
	{
		if (!spill_at_end)
		{
			if (BufFileSeek(spill, 0, (off_t) spill_end, SEEK_SET) != 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not seek in cocohooks temporary file: %m")));
			spill_at_end = true;
		}
		BufFileWrite(spill, (void *) message, len);
		spill_end += len;
	}
	pending_bytes += len;
	pending_count++;
}

/* Drops the messages after offset (a rolled-back subtransaction's). */
static void
truncate_pending(uint64 offset, uint64 count)
{
	pending_bytes = offset;
	pending_count = count;
	if (spill == NULL)
	{
		if (mem.data)
		{
			mem.len = (int) offset;
			mem.data[mem.len] = '\0';
		}
	}
	else
	{
		spill_end = offset;
		spill_at_end = false;
	}
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

	if (spill == NULL)
	{
		Size		off = 0;

		while (off < (Size) mem.len)
		{
			Size		chunk = 0;
			int			n = 0;
			int			done;

			/* whole messages, up to PUSH_CHUNK bytes (at least one) */
			while (off + chunk < (Size) mem.len)
			{
				uint32		msglen = ((CocoEventHeader *) (mem.data + off + chunk))->total_len;

				if (n > 0 && chunk + msglen > PUSH_CHUNK)
					break;
				chunk += msglen;
				n++;
			}
			done = coco_queue_push(mem.data + off, chunk);
			pushed += done;
			if (done < n)
				break;
			off += chunk;
		}
	}
	else
	{
		MemoryContext old = MemoryContextSwitchTo(pending_cxt);

		PG_TRY();
		{
			StringInfoData chunk;
			uint64		read = 0;
			int			n = 0;
			bool		full = false;

			initStringInfo(&chunk);
			if (BufFileSeek(spill, 0, 0, SEEK_SET) != 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not seek in cocohooks temporary file: %m")));
			while (read < spill_end && !full)
			{
				CocoEventHeader hdr;
				int			start = chunk.len;

				if (BufFileRead(spill, &hdr, sizeof(hdr)) != sizeof(hdr))
					ereport(ERROR,
							(errcode_for_file_access(),
							 errmsg("could not read cocohooks temporary file")));
				enlargeStringInfo(&chunk, hdr.total_len);
				memcpy(chunk.data + start, &hdr, sizeof(hdr));
				if (BufFileRead(spill, chunk.data + start + sizeof(hdr),
								hdr.total_len - sizeof(hdr)) != hdr.total_len - sizeof(hdr))
					ereport(ERROR,
							(errcode_for_file_access(),
							 errmsg("could not read cocohooks temporary file")));
				chunk.len += hdr.total_len;
				read += hdr.total_len;
				n++;
				if (chunk.len >= PUSH_CHUNK || read >= spill_end)
				{
					int			done = coco_queue_push(chunk.data, chunk.len);

					pushed += done;
					full = (done < n);
					resetStringInfo(&chunk);
					n = 0;
				}
			}
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
	}

	if (pushed < pending_count)
		coco_note_dropped(pending_count - pushed);
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (pending_count > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has pending cocohooks events"),
						 errdetail("post_save and post_delete events are delivered when their transaction commits, and a prepared transaction commits elsewhere."),
						 errhint("Commit without two-phase commit, or make these writes with \"cocohooks.api_session\" off.")));
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

