/*-------------------------------------------------------------------------
 *
 * backfill_source.c
 *	  The worker's source of backfills: the rows a hook's collection
 *	  already holds, read a chunk at a time in primary-key order and handed
 *	  to the delivery engine as post_save events whose operation is
 *	  "backfill".
 *
 * backfill() (backfill_admin.c) writes a row of cocohooks.backfill_jobs and
 * wakes the worker at commit.  The worker works through every running
 * backfill at once, each a chunk at a time:
 *
 *	read	in a short transaction of its own, the next batch_rows rows after
 *			the last key read (WHERE key > $1 ORDER BY key: the primary key's
 *			index, no long transaction, no lock but the statement's ACCESS
 *			SHARE), each rendered as the row trigger would (the hook's
 *			columns, exclude_columns and filter; the backfill's filter) into
 *			a chunk of messages held in memory (read_chunk);
 *	wait	until every event whose transaction committed before the read has
 *			been started (chunk_may_go, below);
 *	hand on	its rows while the engine has room and the hook's pace line is
 *			short, so that a backfill neither fills the line nor gets its
 *			rows parked (hand_on);
 *	record	in backfill_jobs, about once a second, the last key of the
 *			chunks whose every event is finished (delivered, failed for good
 *			or parked), oldest first (record_progress).  After a restart or
 *			a crash the backfill goes on after it: the rows after it are
 *			sent again, under the same webhook-ids (backfill_event_id).
 *
 * Order with the rows' own events.  A row saved while the backfill runs has
 * its own post_save event too, and the backfill's copy must never reach the
 * hook after a newer one (the watermarks of Netflix's DBLog, held in
 * memory):
 *	- an event of a row that the engine starts after the row's chunk was
 *	  read and before the row is handed on supersedes the row, which is
 *	  then not sent: that event carries the row as new or newer
 *	  (watch_started);
 *	- a chunk is handed on only once every event committed before its read
 *	  (which may carry the row older than the chunk) has been started: in
 *	  wal mode once the WAL reader has handed on everything up to a mark
 *	  written just after the read (a non-transactional message of a few
 *	  bytes), else once the queue has been popped up to where it was after
 *	  the read, with no saved events waiting.  A transaction the read saw
 *	  that pushes its event later still was the last to change its row:
 *	  the chunk holds that very version;
 *	- events started after a row is handed on go behind it in its
 *	  document's line.
 *	So the last event a hook gets of each document carries its latest
 *	version, as far as the hook gets events of it at all.
 *
 * Runs in: the worker.
 *
 * Invariants: each backfill holds at most one chunk not all handed on, of
 * at most batch_rows rows and CHUNK_MAX_BYTES of messages; chunks are
 * recorded in key order; a backfill no longer running (cancelled, failed,
 * done, its hook gone) reads nothing more and is forgotten once the events
 * it handed on are finished and recorded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "backfill_source.h"
#include "cocohooks.h"
#include "delivery_engine.h"
#include "event_message.h"
#include "event_ring.h"
#include "hook_cache.h"
#include "hook_filters.h"
#include "hook_pace.h"
#include "own_transaction.h"
#include "payload.h"
#include "pg_compat.h"
#include "row_filter.h"
#include "saved_events.h"
#include "wal_source.h"
#include "worker_marks.h"

#define LINE_MAX_WAITING	256		/* rows in the hook's pace line at most */
#define CHUNK_MAX_BYTES		(16 * 1024 * 1024)
#define FETCH_ROWS			100		/* rows fetched from the cursor at a time */
#define RELOAD_MS			30000	/* backfill_jobs read again, woken or not */
#define RECORD_MS			1000	/* progress written at most this often */
#define RETRY_MS			1000	/* after a failed read, or while paused */
#define WAIT_POLL_MS		5		/* a chunk waits for the WAL reader or queue */
#define MAX_READ_ERRORS		3		/* in a row, then the backfill fails */
#define MAX_KEY_IN_ID		40		/* longer keys are hashed in the event id */
#define WAL_MARK_PREFIX		"cocohooks.backfill"

/* A row read: its message in the chunk, and whether an event superseded it. */
typedef struct ChunkRow
{
	uint32		offset;
	uint32		hash;			/* of its document_id */
	bool		superseded;
} ChunkRow;

struct Backfill;

/* The rows of one read, until every event handed on from them is finished. */
typedef struct Chunk
{
	dlist_node	node;			/* in its backfill's chunks, in key order */
	char	   *last_key;		/* of the last row read */
	int			unfinished;		/* events handed on, not finished */
	int64		rows_read;
	int64		rows_sent;
	int64		rows_filtered;
	int64		rows_superseded;
} Chunk;

typedef struct Backfill
{
	dlist_node	node;
	int64		id;
	int64		hook_id;
	Oid			relid;
	int			batch_rows;
	char	   *filter_tree;	/* the backfill's own, or NULL */
	char	   *read_after;		/* key of the last row read; NULL: none yet */
	bool		running;		/* false: reads nothing more */
	bool		exhausted;		/* the last read found no row */
	bool		seen;			/* in the last reload */
	bool		paused;			/* the last read found the hook disabled */
	TimestampTz next_read;		/* no read before (paused, or after an error) */
	int			read_errors;

	/* the chunk not all handed on (NULL: none), its messages and rows */
	Chunk	   *current;
	MemoryContext chunk_cxt;
	StringInfoData msgs;
	ChunkRow   *rows;
	int			nrows;
	int			next_row;		/* the next to hand on */
	uint32	   *slots;			/* row index + 1 by document hash; 0: empty */
	uint32		slot_mask;
	bool		waiting;		/* for what committed before its read */
	uint64		wal_mark;		/* in wal mode: handed on through here */
	uint64		queue_head;		/* otherwise: the queue popped up to here */

	dlist_head	chunks;			/* handed on or being, oldest first */

	/* finished since the last record */
	char	   *done_key;
	int64		done_read;
	int64		done_sent;
	int64		done_filtered;
	int64		done_superseded;
	bool		dirty;
	bool		done;			/* every row read and every event finished */
	char	   *error;			/* the backfill failed: why */
	MemoryContext cxt;
} Backfill;

static void chunk_event_finished(uint64 wal_lsn, void *source_arg);

static const CocoEventSource backfill_source = {
	.name = "backfill",
	.finished = chunk_event_finished,
	/* after a restart the backfill reads its rows again */
	.keeps_events = true,
};

static dlist_head backfills = DLIST_STATIC_INIT(backfills);
static MemoryContext source_cxt = NULL;
static int	nheld = 0;			/* backfills with a current chunk */
static uint32 seen_generation = 0;
static uint32 seen_hooks_generation = 0;
static TimestampTz next_reload = 0;
static TimestampTz next_record = 0;

static void
chunk_event_finished(uint64 wal_lsn, void *source_arg)
{
	((Chunk *) source_arg)->unfinished--;
}

/*
 * The spec (or reference) of hook_id in a list of nhooks of them, and its
 * place in the list; NULL if it is not there.
 */
static const CocoHookSpec *
spec_in(const char *specs, int nhooks, int64 hook_id, int *index)
{
	const char *p = specs;

	for (int i = 0; i < nhooks; i++)
	{
		const CocoHookSpec *spec = (const CocoHookSpec *) p;

		if (spec->hook_id == hook_id)
		{
			*index = i;
			return spec;
		}
		p += spec->spec_len;
	}
	return NULL;
}

/* The row of the current chunk whose document_id is doc, or NULL. */
static ChunkRow *
find_row(Backfill *bf, const char *doc, uint32 len)
{
	uint32		hash = hash_bytes((const unsigned char *) doc, len);

	for (uint32 i = hash & bf->slot_mask; bf->slots[i] != 0; i = (i + 1) & bf->slot_mask)
	{
		ChunkRow   *row = &bf->rows[bf->slots[i] - 1];
		const CocoEventHeader *m = (const CocoEventHeader *) (bf->msgs.data + row->offset);

		if (row->hash == hash && m->document_id_len == len &&
			memcmp(coco_event_document_id(m), doc, len) == 0)
			return row;
	}
	return NULL;
}

/*
 * The engine is about to start msg: a row of a held chunk of the same
 * document and hook, not handed on yet, is superseded by it.
 */
static void
watch_started(const CocoEventHeader *msg, const CocoEventSource *source)
{
	dlist_iter	iter;

	if (nheld == 0 || source == &backfill_source)
		return;
	dlist_foreach(iter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, iter.cur);
		ChunkRow   *row;
		int			index;

		if (bf->current == NULL || bf->relid != msg->collection_relid ||
			spec_in(coco_event_hooks(msg), msg->nhooks, bf->hook_id, &index) == NULL)
			continue;
		row = find_row(bf, coco_event_document_id(msg), msg->document_id_len);
		if (row != NULL && row - bf->rows >= bf->next_row)
			row->superseded = true;
	}
}

void
coco_backfill_init(void)
{
	source_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks backfills",
									   ALLOCSET_SMALL_SIZES);
	coco_engine_watch_starts(watch_started);
	next_reload = 0;
}

/*
 * The event id of a backfill's row: "bf<id>_<key>", the key as it is when
 * short and plain, else hashed.  The same after a restart, so a row sent
 * again has the same webhook-id.
 */
static void
backfill_event_id(char *out, int64 id, const char *key)
{
	size_t		len = strlen(key);
	bool		plain = len > 0 && len <= MAX_KEY_IN_ID;

	for (size_t i = 0; plain && i < len; i++)
		plain = isalnum((unsigned char) key[i]) || key[i] == '-' || key[i] == '.' ||
			key[i] == ':' || key[i] == '_';
	if (plain)
		snprintf(out, COCO_MAX_EVENT_ID_LEN + 1, "bf%lld_%s", (long long) id, key);
	else
		snprintf(out, COCO_MAX_EVENT_ID_LEN + 1, "bf%lld_h%016llx", (long long) id,
				 (unsigned long long) hash_bytes_extended((const unsigned char *) key, len, 0));
}

/* Gives up the current chunk's rows not handed on yet. */
static void
drop_current(Backfill *bf)
{
	if (bf->current == NULL)
		return;
	bf->current = NULL;
	bf->waiting = false;
	nheld--;
	MemoryContextReset(bf->chunk_cxt);
}

/*
 * Reading a chunk
 */

/* SELECT of the next rows: the table's own (ONLY), or a partitioned table's */
static char *
chunk_query(Relation rel, AttrNumber key_attnum, bool after)
{
	Oid			relid = RelationGetRelid(rel);
	const char *key = quote_identifier(get_attname(relid, key_attnum, false));
	char	   *table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												   RelationGetRelationName(rel));
	const char *only = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ";

	if (!after)
		return psprintf("SELECT t FROM %s%s t ORDER BY t.%s", only, table, key);
	return psprintf("SELECT t FROM %s%s t WHERE t.%s > $1::%s ORDER BY t.%s",
					only, table, key,
					format_type_be_qualified(TupleDescAttr(RelationGetDescr(rel), key_attnum - 1)->atttypid),
					key);
}

/* Puts row n of the current chunk in the table of documents. */
static void
add_slot(Backfill *bf, int n)
{
	uint32		i = bf->rows[n].hash & bf->slot_mask;

	while (bf->slots[i] != 0)
		i = (i + 1) & bf->slot_mask;
	bf->slots[i] = n + 1;
}

/*
 * In the read's transaction: the next rows, each rendered into a message
 * of the current chunk or counted as filtered; then the mark the chunk
 * waits for.  Leaves bf->current NULL if the hook is not enabled (paused).
 */
static void
read_chunk(void *arg)
{
	Backfill   *bf = (Backfill *) arg;
	Relation	rel;
	CocoTableHooks *th;
	CocoHookFilter *f = NULL;
	const CocoExclusion *ex = NULL;
	CocoRowFilter *filter = NULL;
	CocoRowFilterRows *filter_rows = NULL;
	int			index;
	const CocoHookSpec *spec;
	Portal		portal;
	Datum		args[1];
	Oid			types[1] = {TEXTOID};
	Chunk	   *chunk;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext xact_cxt = CurrentMemoryContext;
	StringInfoData body;
	char	   *last = NULL;
	int			nslots;
	bool		full = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rel = table_open(bf->relid, AccessShareLock);
	th = coco_hook_cache_lookup(rel, InvalidOid);
	if (th->pk_attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" has no primary key of one column",
						RelationGetRelationName(rel))));
	/* the hook's reference among the table's enabled post_save hooks */
	spec = spec_in(th->hooks[COCO_POST_SAVE], th->nhooks[COCO_POST_SAVE], bf->hook_id, &index);
	bf->paused = spec == NULL;
	if (bf->paused)
	{
		/* disabled: try again later */
		table_close(rel, AccessShareLock);
		SPI_finish();
		return;
	}
	if (th->filters[COCO_POST_SAVE] != NULL)
	{
		f = &th->filters[COCO_POST_SAVE][index];
		if (f->exclusion >= 0)
			ex = &th->exclusions[f->exclusion];
	}
	if (bf->filter_tree != NULL)
	{
		filter = coco_row_filter_load(rel, bf->relid, bf->hook_id, bf->filter_tree);
		filter_rows = coco_row_filter_rows_create(rel);
	}

	MemoryContextReset(bf->chunk_cxt);
	MemoryContextSwitchTo(bf->chunk_cxt);
	chunk = MemoryContextAllocZero(bf->cxt, sizeof(Chunk));
	initStringInfo(&bf->msgs);
	bf->rows = palloc(sizeof(ChunkRow) * bf->batch_rows);
	bf->nrows = 0;
	bf->next_row = 0;
	MemoryContextSwitchTo(xact_cxt);
	initStringInfo(&body);

	args[0] = bf->read_after ? CStringGetTextDatum(bf->read_after) : (Datum) 0;
	portal = SPI_cursor_open_with_args(NULL, chunk_query(rel, th->pk_attnum, bf->read_after != NULL),
									   bf->read_after ? 1 : 0, types, args, NULL,
									   true, CURSOR_OPT_NO_SCROLL);
	while (!full && chunk->rows_read < bf->batch_rows)
	{
		int			want = Min(FETCH_ROWS, bf->batch_rows - (int) chunk->rows_read);

		SPI_cursor_fetch(portal, true, want);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			HeapTupleHeader td = DatumGetHeapTupleHeader(SPI_getbinval(SPI_tuptable->vals[r],
																	   SPI_tuptable->tupdesc,
																	   1, &isnull));
			HeapTupleData tup;
			char	   *key;
			char	   *document_id;
			char		event_id[COCO_MAX_EVENT_ID_LEN + 1];
			ChunkRow   *row;

			CHECK_FOR_INTERRUPTS();
			tup.t_len = HeapTupleHeaderGetDatumLength(td);
			ItemPointerSetInvalid(&tup.t_self);
			tup.t_tableOid = bf->relid;
			tup.t_data = td;
			key = OutputFunctionCall(&th->pk_out,
									 heap_getattr(&tup, th->pk_attnum, RelationGetDescr(rel), &isnull));
			chunk->rows_read++;
			if (last)
				pfree(last);
			last = key;

			if ((f != NULL && !coco_hook_filter_fires(th, f, rel, COCO_POST_SAVE, &tup, NULL)) ||
				(filter != NULL && !coco_row_filter_passes(filter, filter_rows, &tup, NULL)))
			{
				chunk->rows_filtered++;
				continue;
			}
			document_id = coco_document_id_json(th, rel, &tup);
			backfill_event_id(event_id, bf->id, key);
			resetStringInfo(&body);
			coco_build_backfill_body(&body, th, rel, &tup, document_id, ex);

			MemoryContextSwitchTo(bf->chunk_cxt);
			row = &bf->rows[bf->nrows++];
			row->offset = bf->msgs.len;
			row->hash = hash_bytes((const unsigned char *) document_id, strlen(document_id));
			row->superseded = false;
			coco_message_append(&bf->msgs, COCO_POST_SAVE, th->collection_relid,
								(const char *) spec, spec->spec_len, 1,
								th->collection, strlen(th->collection),
								document_id, strlen(document_id),
								event_id, 0, now, NULL, NULL,
								body.data, body.len);
			MemoryContextSwitchTo(xact_cxt);
			pfree(document_id);
			/* the rest in the next chunk */
			if (bf->msgs.len >= CHUNK_MAX_BYTES)
			{
				full = true;
				break;
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	table_close(rel, AccessShareLock);
	SPI_finish();

	if (chunk->rows_read == 0)
	{
		pfree(chunk);
		bf->exhausted = true;
		return;
	}
	chunk->last_key = MemoryContextStrdup(bf->cxt, last);
	if (bf->read_after)
		pfree(bf->read_after);
	bf->read_after = MemoryContextStrdup(bf->cxt, last);
	dlist_push_tail(&bf->chunks, &chunk->node);
	if (bf->nrows == 0)
		return;					/* every row filtered: nothing to hand on */

	/* the table of documents, for watch_started */
	for (nslots = 16; nslots < bf->nrows * 2; nslots *= 2)
		;
	bf->slots = MemoryContextAllocZero(bf->chunk_cxt, sizeof(uint32) * nslots);
	bf->slot_mask = nslots - 1;
	for (int i = 0; i < bf->nrows; i++)
		add_slot(bf, i);

	/*
	 * What committed before the read is in the WAL before this mark, or in
	 * the queue before its head now.
	 */
	bf->wal_mark = 0;
	bf->queue_head = 0;
	if (coco_wal_source_reading())
	{
		bf->wal_mark = coco_log_logical_message(WAL_MARK_PREFIX, (const char *) &bf->id,
												sizeof(bf->id), false);
		XLogFlush(bf->wal_mark);
	}
	else
	{
		uint64		tail;

		coco_ring_positions(&bf->queue_head, &tail);
	}
	bf->current = chunk;
	bf->waiting = true;
	nheld++;
}

/* Whether every event committed before the current chunk's read has started. */
static bool
chunk_may_go(Backfill *bf)
{
	uint64		head;
	uint64		tail;

	if (bf->wal_mark != 0)
		return coco_wal_source_handed_on_through(bf->wal_mark);
	coco_ring_positions(&head, &tail);
	return tail >= bf->queue_head && !coco_saved_events_waiting();
}

/* Reads the next chunk; on repeated errors the backfill fails. */
static void
next_chunk(Backfill *bf)
{
	char	   *error = NULL;
	MemoryContext old = MemoryContextSwitchTo(bf->cxt);

	if (coco_in_own_transaction_error(read_chunk, bf, &error))
	{
		bf->read_errors = 0;
		if (bf->paused)
			bf->next_read = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RETRY_MS);
	}
	else
	{
		/* nothing of the failed read is kept */
		MemoryContextReset(bf->chunk_cxt);
		if (++bf->read_errors >= MAX_READ_ERRORS)
		{
			bf->running = false;
			bf->error = error;
			bf->dirty = true;
		}
		bf->next_read = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RETRY_MS);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Handing on
 */

/* Hands on the current chunk's rows while the engine and the hook take them. */
static bool
hand_on(Backfill *bf)
{
	Chunk	   *chunk = bf->current;
	bool		took = false;

	while (bf->next_row < bf->nrows)
	{
		ChunkRow   *row;

		if (coco_engine_room() <= 0 ||
			coco_pace_hook_backed_up(bf->hook_id, LINE_MAX_WAITING))
			break;
		row = &bf->rows[bf->next_row++];
		if (row->superseded)
		{
			chunk->rows_superseded++;
			continue;
		}
		chunk->unfinished++;
		chunk->rows_sent++;
		coco_engine_start_event((const CocoEventHeader *) (bf->msgs.data + row->offset),
								0, &backfill_source, chunk);
		took = true;
	}
	if (bf->next_row == bf->nrows)
		drop_current(bf);
	return took;
}

/* Chunks whose every event is finished, oldest first, count as done. */
static void
collect_finished(Backfill *bf)
{
	while (!dlist_is_empty(&bf->chunks))
	{
		Chunk	   *chunk = dlist_head_element(Chunk, node, &bf->chunks);

		if (chunk == bf->current || chunk->unfinished > 0)
			break;
		if (bf->done_key)
			pfree(bf->done_key);
		bf->done_key = chunk->last_key;
		bf->done_read += chunk->rows_read;
		bf->done_sent += chunk->rows_sent;
		bf->done_filtered += chunk->rows_filtered;
		bf->done_superseded += chunk->rows_superseded;
		bf->dirty = true;
		dlist_delete(&chunk->node);
		pfree(chunk);
	}
	if (bf->running && bf->exhausted && bf->current == NULL &&
		dlist_is_empty(&bf->chunks) && !bf->done)
	{
		bf->done = true;
		bf->dirty = true;
	}
}

/*
 * backfill_jobs
 */

static Backfill *
find_backfill(int64 id)
{
	dlist_iter	iter;

	dlist_foreach(iter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, iter.cur);

		if (bf->id == id)
			return bf;
	}
	return NULL;
}

/* In a transaction: the running backfills, those new to us added. */
static void
read_jobs(void *arg)
{
	dlist_iter	iter;

	Oid			nsp = get_namespace_oid("cocohooks", true);

	dlist_foreach(iter, &backfills)
		dlist_container(Backfill, node, iter.cur)->seen = false;
	/* a catalog older than 0.3.0 (not updated yet) has none */
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("backfill_jobs", nsp)))
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT b.id, b.hook_id, h.collection::oid, b.batch_rows, b.filter_tree, b.last_key"
					" FROM cocohooks.backfill_jobs b JOIN cocohooks.hooks h ON h.id = b.hook_id"
					" WHERE b.state = 'running' ORDER BY b.id", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.backfill_jobs");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Backfill   *bf = find_backfill(id);
		Datum		value;

		if (bf != NULL)
		{
			bf->seen = true;
			continue;
		}
		bf = MemoryContextAllocZero(source_cxt, sizeof(Backfill));
		bf->cxt = AllocSetContextCreate(source_cxt, "cocohooks backfill",
										ALLOCSET_SMALL_SIZES);
		bf->chunk_cxt = AllocSetContextCreate(bf->cxt, "cocohooks backfill chunk",
											  ALLOCSET_DEFAULT_SIZES);
		bf->id = id;
		bf->hook_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		bf->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		bf->batch_rows = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
		value = SPI_getbinval(tup, desc, 5, &isnull);
		bf->filter_tree = isnull ? NULL : MemoryContextStrdup(bf->cxt, TextDatumGetCString(value));
		value = SPI_getbinval(tup, desc, 6, &isnull);
		bf->read_after = isnull ? NULL : MemoryContextStrdup(bf->cxt, TextDatumGetCString(value));
		bf->running = true;
		bf->seen = true;
		dlist_init(&bf->chunks);
		dlist_push_tail(&backfills, &bf->node);
	}
	SPI_finish();
}

/*
 * Reads backfill_jobs again: new backfills start, those gone stop (their
 * events handed on are still delivered).
 */
static void
reload(void)
{
	dlist_iter	iter;

	seen_generation = coco_marks_backfills_generation();
	seen_hooks_generation = coco_marks_hooks_generation();
	next_reload = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RELOAD_MS);
	if (!coco_in_own_transaction(read_jobs, NULL))
		return;
	dlist_foreach(iter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, iter.cur);

		/* cancelled, or its hook unregistered */
		if (!bf->seen && bf->running)
		{
			bf->running = false;
			drop_current(bf);
		}
	}
}

/* In a transaction: each dirty backfill's progress (and end). */
static void
write_progress(void *arg)
{
	dlist_iter	iter;
	Oid			types[8] = {INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	dlist_foreach(iter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, iter.cur);
		Datum		args[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		const char *end = bf->done ? "done" : bf->error ? "failed" : NULL;
		bool		isnull;

		if (!bf->dirty)
			continue;
		args[0] = Int64GetDatum(bf->id);
		args[1] = bf->done_key ? CStringGetTextDatum(bf->done_key) : (Datum) 0;
		nulls[1] = bf->done_key ? ' ' : 'n';
		args[2] = Int64GetDatum(bf->done_read);
		args[3] = Int64GetDatum(bf->done_sent);
		args[4] = Int64GetDatum(bf->done_filtered);
		args[5] = Int64GetDatum(bf->done_superseded);
		args[6] = end ? CStringGetTextDatum(end) : (Datum) 0;
		nulls[6] = end ? ' ' : 'n';
		args[7] = bf->error ? CStringGetTextDatum(bf->error) : (Datum) 0;
		nulls[7] = bf->error ? ' ' : 'n';
		if (SPI_execute_with_args("UPDATE cocohooks.backfill_jobs SET"
								  " last_key = COALESCE($2, last_key),"
								  " rows_read = rows_read + $3, rows_sent = rows_sent + $4,"
								  " rows_filtered = rows_filtered + $5,"
								  " rows_superseded = rows_superseded + $6,"
								  " updated_at = now(),"
								  " finished_at = CASE WHEN $7 IS NOT NULL AND state = 'running'"
								  "   THEN now() ELSE finished_at END,"
								  " error = CASE WHEN $7 IS NOT NULL AND state = 'running'"
								  "   THEN $8 ELSE error END,"
								  " state = CASE WHEN $7 IS NOT NULL AND state = 'running'"
								  "   THEN $7 ELSE state END"
								  " WHERE id = $1 RETURNING state",
								  8, types, args, nulls, false, 1) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not update cocohooks.backfill_jobs");
		/* gone with its hook, or cancelled meanwhile: read nothing more */
		if (SPI_processed == 0 ||
			strcmp(TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
													 1, &isnull)), "running") != 0)
		{
			bf->running = false;
			drop_current(bf);
		}
	}
	SPI_finish();
}

/* Writes what finished, about once a second; forgets backfills that ended. */
static void
record_progress(void)
{
	dlist_iter	iter;
	dlist_mutable_iter miter;
	bool		any = false;
	bool		ending = false;

	dlist_foreach(iter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, iter.cur);

		any |= bf->dirty;
		ending |= bf->dirty && (bf->done || bf->error);
	}
	if (!any || (!ending && GetCurrentTimestamp() < next_record))
		return;
	next_record = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECORD_MS);
	if (!coco_in_own_transaction(write_progress, NULL))
		return;
	dlist_foreach_modify(miter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, miter.cur);

		if (bf->dirty)
		{
			bf->dirty = false;
			bf->done_read = bf->done_sent = bf->done_filtered = bf->done_superseded = 0;
			if (bf->done)
				bf->running = false;
		}
		if (!bf->running && bf->current == NULL && dlist_is_empty(&bf->chunks))
		{
			dlist_delete(&bf->node);
			MemoryContextDelete(bf->cxt);
			pfree(bf);
		}
	}
}

/*
 * From the worker's loop: reads and hands on what backfills have, records
 * their progress; true if any event was handed on.
 */
bool
coco_backfill_take(void)
{
	dlist_iter	iter;
	bool		took = false;
	TimestampTz now = GetCurrentTimestamp();

	/* started or cancelled, or a hook unregistered (its backfills go with it) */
	if (seen_generation != coco_marks_backfills_generation() ||
		seen_hooks_generation != coco_marks_hooks_generation() || now >= next_reload)
		reload();
	dlist_foreach(iter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, iter.cur);

		if (bf->current != NULL && bf->waiting)
			bf->waiting = !chunk_may_go(bf);
		if (bf->current != NULL && !bf->waiting)
			took |= hand_on(bf);
		if (bf->current == NULL && bf->running && !bf->exhausted &&
			now >= bf->next_read && coco_engine_room() > 0 &&
			!coco_pace_hook_backed_up(bf->hook_id, LINE_MAX_WAITING))
		{
			next_chunk(bf);
			if (bf->current != NULL && !(bf->waiting = !chunk_may_go(bf)))
				took |= hand_on(bf);
		}
		collect_finished(bf);
	}
	record_progress();
	return took;
}

/*
 * Milliseconds until a backfill needs the loop again: a chunk waits for the
 * WAL reader or the queue, a read or a record is due, or backfill_jobs is
 * read again.
 */
long
coco_backfill_timeout_ms(void)
{
	dlist_iter	iter;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz next = next_reload;
	long		ms;

	dlist_foreach(iter, &backfills)
	{
		Backfill   *bf = dlist_container(Backfill, node, iter.cur);

		if (bf->current != NULL && bf->waiting)
			return WAIT_POLL_MS;
		if (bf->dirty && next_record < next)
			next = next_record;
		if (bf->current == NULL && bf->running && !bf->exhausted && bf->next_read < next)
			next = bf->next_read;
	}
	if (next_reload == 0)
		return 0;
	ms = TimestampDifferenceMilliseconds(now, next);
	return ms;
}
