/*-------------------------------------------------------------------------
 *
 * parked_retries.c
 *	  Deliveries that wait to retry longer than the worker keeps them in
 *	  memory: parked in cocohooks.retry_queue, and taken back when due.
 *
 * A delivery that fails with retries left waits in worker memory for its
 * next attempt (retry_queue.c) when that attempt is near and few others
 * wait; otherwise the delivery engine parks it here: its event, as a
 * carried message with this one hook (its webhook-id, attempts and queue
 * time kept), becomes a row of cocohooks.retry_queue with the time of its
 * next attempt.  Once the row is committed the delivery counts as finished
 * for its source, so the WAL of its event is no longer kept, and the
 * worker's memory no longer holds it.  The worker takes due rows back
 * (coco_parked_take) and hands them to the engine as events of the parked
 * source; a row is deleted once its delivery has finished for good, or
 * updated in place when it is parked again.  Deliveries that would wait
 * for their hook's pace past its line's bound in memory (hook_pace.c) are
 * parked here too, before their first attempt or a due retry, with their
 * attempts unchanged and the time the pace should reach them; a faster
 * pace pulls those never attempted in (coco_parked_pull_in).
 *
 * Document order (ordering = 'document'): a parked delivery parks the
 * deliveries waiting behind it in its document's line, in order, and
 * every later event of that hook and document is parked behind them while
 * any is parked (coco_parked_holds).  Rows of a document are taken back
 * one at a time, oldest (lowest id) first: only a document's first row
 * has the time of its next attempt, the rows behind it wait with
 * next_attempt 'infinity', and when the first row is deleted the next one
 * becomes due, in the same transaction.  So the due rows are only ever
 * those that may go, and taking them costs the same however many rows a
 * document has behind its first (with every row due, each take looked at
 * them all: 3,000 rows of one document drained at 5 a second).
 *
 * Which documents have rows parked is counted in memory for at most
 * PARKED_DOCS_MAX documents.  Past that, the rows of further documents are
 * counted per hook only ("untracked"), and while a hook has any, whether
 * one of its documents outside the count has rows parked is asked of the
 * table (its index retry_queue_document).  A document enters the count
 * only while its hook has no untracked row, so a document in the count
 * has all its rows counted there, and one outside it has all its rows
 * untracked: the answer is always exact (a wrong "no" would let a later
 * event pass a parked one, a wrong "yes" would park it ahead of an
 * earlier event still in memory).
 *
 * Runs in: the worker.  Rows are written in the worker's own short
 * transactions (coco_parked_flush), never inside libcurl.
 *
 * Invariants:
 *	- a parked delivery is finished for its source only after its row has
 *	  committed; a taken row is deleted only after its delivery finished,
 *	  so a crash at any point loses nothing (a delivery may go again,
 *	  under its webhook-id);
 *	- memory is bounded: at most PARK_BATCH rows (PARK_BATCH_BYTES) wait to
 *	  be written, taken rows are bounded by the engine's room, and the
 *	  table holds the rest; what is kept of parked rows is a count for at
 *	  most PARKED_DOCS_MAX documents of ordered hooks, and one per hook;
 *	- with a schema older than 0.3.0 (no table yet) nothing is parked.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "cocohooks.h"
#include "event_message.h"
#include "parked_retries.h"
#include "sql_array.h"
#include "worker_marks.h"

/* rows (and bytes of them) written at once at most; how often due rows are looked for */
#define PARK_BATCH			1000
#define PARK_BATCH_BYTES	(16 * 1024 * 1024)
#define POLL_INTERVAL_MS	1000
#define DEFER_MS			10

/*
 * Documents of ordered hooks whose parked rows are counted in memory (about
 * 50 bytes each, some 3 MB in all); the rows of others are asked of the table.
 */
#define PARKED_DOCS_MAX		65536

typedef struct DocKey
{
	int64		hook_id;
	int64		document_key;
} DocKey;

typedef struct ParkedDoc
{
	DocKey		key;			/* hash key */
	int64		rows;			/* rows parked and not deleted */
} ParkedDoc;

/* an ordered hook's parked rows of documents outside parked_docs */
typedef struct UntrackedHook
{
	int64		hook_id;		/* hash key */
	int64		rows;
} UntrackedHook;

typedef struct TakenRow
{
	int64		id;				/* hash key */
	DocKey		doc;			/* document_key 0: not ordered */
	bool		reparked;		/* parked again: updated, not deleted */
} TakenRow;

/* a row to insert (id 0) or to update, its message in pending_messages */
typedef struct PendingRow
{
	int64		id;
	DocKey		doc;
	int			attempts;
	TimestampTz next_attempt;
	int			off;
	int			len;
	char		webhook_id[96];
} PendingRow;

static MemoryContext parked_cxt = NULL;
static HTAB *parked_docs = NULL;
static HTAB *untracked = NULL;
static SPIPlanPtr doc_parked_plan = NULL;
static HTAB *taken = NULL;
static int	ntaken = 0;
static PendingRow *pending = NULL;
static int	npending = 0;
static StringInfoData pending_messages;
static TakenRow *deletes = NULL;
static int	ndeletes = 0;
static int64 parked_rows = 0;	/* in the table or pending, not deleted */
static bool available = false;
static TimestampTz next_poll = 0;

static void parked_finished(uint64 wal_lsn, void *source_arg);
static void create_counts(void);

const CocoEventSource coco_parked_source = {
	.name = "parked retries",
	.finished = parked_finished,
	.retention_cut = NULL,
	.keeps_events = true,
};

/*
 * A transaction of the worker's own, with SPI connected; returns the memory
 * context to go back to at end_transaction().
 */
static MemoryContext
begin_transaction(const char *activity)
{
	MemoryContext old = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	return old;
}

static void
end_transaction(MemoryContext old)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* In a transaction: whether this schema has cocohooks.retry_queue. */
static bool
table_exists(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("retry_queue", nsp));
}

/* The untracked rows of a hook, NULL if none. */
static UntrackedHook *
untracked_of(int64 hook_id)
{
	return hash_search(untracked, &hook_id, HASH_FIND, NULL);
}

/*
 * Counts delta rows parked (> 0) or deleted (< 0) of a document of an
 * ordered hook: in parked_docs if the document is there, or may enter it
 * (there is room and its hook has no untracked row), else as untracked
 * rows of its hook.
 */
static void
count_doc(DocKey doc, int64 delta)
{
	ParkedDoc  *d;
	UntrackedHook *u;
	bool		found;

	if (doc.document_key == 0)
		return;
	d = hash_search(parked_docs, &doc, HASH_FIND, NULL);
	if (d != NULL)
	{
		d->rows += delta;
		if (d->rows <= 0)
			hash_search(parked_docs, &doc, HASH_REMOVE, NULL);
		return;
	}
	u = untracked_of(doc.hook_id);
	if (delta > 0 && u == NULL && hash_get_num_entries(parked_docs) < PARKED_DOCS_MAX)
	{
		d = hash_search(parked_docs, &doc, HASH_ENTER, NULL);
		d->rows = delta;
		return;
	}
	if (u == NULL)
	{
		if (delta < 0)
			return;
		u = hash_search(untracked, &doc.hook_id, HASH_ENTER, &found);
		u->rows = 0;
	}
	u->rows += delta;
	if (u->rows <= 0)
		hash_search(untracked, &doc.hook_id, HASH_REMOVE, NULL);
}

/*
 * Reads what is parked already (rows a previous worker left): the count of
 * rows, and of rows per document of at most PARKED_DOCS_MAX documents; the
 * rest are untracked rows of their hooks.  SPI connected.
 */
static void
load_parked(void)
{
	char	   *sql;

	hash_destroy(parked_docs);
	hash_destroy(untracked);
	create_counts();
	if (SPI_execute("SELECT count(*) FROM cocohooks.retry_queue", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.retry_queue");
	{
		bool		isnull;

		parked_rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (parked_rows == 0)
		return;

	/*
	 * Only a document's first row is due: the worker keeps this itself
	 * (coco_parked_add, promote_next_rows), but a first row may have gone
	 * without it (deleted by hand).
	 */
	if (SPI_execute("UPDATE cocohooks.retry_queue r "
					"SET next_attempt = CASE WHEN r.next_attempt = 'infinity' THEN now() ELSE 'infinity' END "
					"WHERE document_key IS NOT NULL "
					"AND (next_attempt = 'infinity') = NOT EXISTS (SELECT FROM cocohooks.retry_queue o "
					"WHERE o.hook_id = r.hook_id AND o.document_key = r.document_key AND o.id < r.id)",
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update cocohooks.retry_queue");

	/*
	 * Per hook, its rows of documents and the part of them that the counted
	 * documents hold; the difference is untracked.
	 */
	sql = psprintf("WITH d AS (SELECT hook_id, document_key, count(*) AS n "
				   "FROM cocohooks.retry_queue WHERE document_key IS NOT NULL "
				   "GROUP BY 1, 2 LIMIT %d) "
				   "SELECT hook_id, document_key, n FROM d "
				   "UNION ALL "
				   "SELECT hook_id, NULL, count(*) - coalesce((SELECT sum(n) FROM d "
				   "WHERE d.hook_id = q.hook_id), 0) "
				   "FROM cocohooks.retry_queue q WHERE document_key IS NOT NULL GROUP BY 1",
				   PARKED_DOCS_MAX);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.retry_queue");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		key_null;
		bool		isnull;
		int64		hook_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Datum		key = SPI_getbinval(tup, desc, 2, &key_null);
		int64		n = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));

		if (!key_null)
		{
			DocKey		doc = {.hook_id = hook_id, .document_key = DatumGetInt64(key)};
			ParkedDoc  *d = hash_search(parked_docs, &doc, HASH_ENTER, NULL);

			d->rows = n;
		}
		else if (n > 0)
		{
			UntrackedHook *u = hash_search(untracked, &hook_id, HASH_ENTER, NULL);

			u->rows = n;
		}
	}
	pfree(sql);
}

/* Looks again whether the table exists (ALTER EXTENSION UPDATE made it). */
static void
check_available(void)
{
	MemoryContext old = begin_transaction("reading cocohooks.retry_queue");

	available = table_exists();
	if (available)
		load_parked();
	end_transaction(old);
	coco_marks_set_parked((uint64) parked_rows);
}

/* The counts of parked rows per document and per hook, empty. */
static void
create_counts(void)
{
	HASHCTL		ctl = {0};

	ctl.keysize = sizeof(DocKey);
	ctl.entrysize = sizeof(ParkedDoc);
	ctl.hcxt = parked_cxt;
	parked_docs = hash_create("cocohooks parked documents", 256, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(UntrackedHook);
	untracked = hash_create("cocohooks hooks with untracked parked rows", 16, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* At worker start, outside a transaction. */
void
coco_parked_init(void)
{
	HASHCTL		ctl = {0};

	parked_cxt = AllocSetContextCreate(TopMemoryContext, "cocohooks parked retries",
									   ALLOCSET_DEFAULT_SIZES);
	create_counts();
	ctl.hcxt = parked_cxt;
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(TakenRow);
	taken = hash_create("cocohooks taken parked rows", 256, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	pending = MemoryContextAlloc(parked_cxt, sizeof(PendingRow) * PARK_BATCH);
	deletes = MemoryContextAlloc(parked_cxt, sizeof(TakenRow) * PARK_BATCH);
	{
		MemoryContext old = MemoryContextSwitchTo(parked_cxt);

		initStringInfo(&pending_messages);
		MemoryContextSwitchTo(old);
	}
	check_available();
	next_poll = GetCurrentTimestamp();
}

/* Whether deliveries can be parked (the schema has the table). */
bool
coco_parked_available(void)
{
	return available;
}

/* Whether no more can be parked before the next flush. */
bool
coco_parked_full(void)
{
	return npending >= PARK_BATCH || ndeletes >= PARK_BATCH ||
		pending_messages.len >= PARK_BATCH_BYTES;
}

/*
 * Whether an untracked document has rows parked: rows waiting to be
 * written, or rows in the table (rows finished but not deleted yet count
 * too, as in parked_docs).  Outside a transaction.
 */
static bool
untracked_doc_parked(DocKey doc)
{
	MemoryContext old;
	Datum		args[2];
	bool		parked;

	for (int i = 0; i < npending; i++)
		if (pending[i].id == 0 && pending[i].doc.hook_id == doc.hook_id &&
			pending[i].doc.document_key == doc.document_key)
			return true;

	if (IsTransactionState())
		elog(ERROR, "cocohooks: parked documents looked up inside a transaction");
	old = begin_transaction("looking up a document in cocohooks.retry_queue");
	if (doc_parked_plan == NULL)
	{
		Oid			types[2] = {INT8OID, INT8OID};

		doc_parked_plan = SPI_prepare("SELECT FROM cocohooks.retry_queue "
									  "WHERE hook_id = $1 AND document_key = $2 LIMIT 1",
									  2, types);
		if (doc_parked_plan == NULL)
			elog(ERROR, "could not prepare a lookup in cocohooks.retry_queue: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(doc_parked_plan);
	}
	args[0] = Int64GetDatum(doc.hook_id);
	args[1] = Int64GetDatum(doc.document_key);
	if (SPI_execute_plan(doc_parked_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.retry_queue");
	parked = SPI_processed > 0;
	end_transaction(old);
	return parked;
}

/*
 * Whether later events of this ordered hook's document must be parked
 * behind those parked already.  Events taken back from the table are not
 * held by themselves.  Outside a transaction: may look in the table.
 */
bool
coco_parked_holds(int64 hook_id, int64 document_key,
				  const CocoEventSource *source)
{
	DocKey		doc;

	if (source == &coco_parked_source ||
		(hash_get_num_entries(parked_docs) == 0 && hash_get_num_entries(untracked) == 0))
		return false;
	doc.hook_id = hook_id;
	doc.document_key = document_key;
	if (hash_search(parked_docs, &doc, HASH_FIND, NULL) != NULL)
		return true;
	return untracked_of(hook_id) != NULL && untracked_doc_parked(doc);
}

/*
 * Parks one delivery: its event with this hook only, attempts made so far,
 * its next attempt at next_attempt.  document_key is 0 for a hook that is
 * not ordered.  A delivery taken back from the table (source is ours)
 * updates its row.  The row is written by the next coco_parked_flush();
 * call only while !coco_parked_full().
 */
void
coco_parked_add(const CocoEventHeader *msg, const CocoHookSpec *spec,
				const char *event_id, const char *webhook_id, int attempts,
				TimestampTz next_attempt, int64 document_key,
				const CocoEventSource *source, void *source_arg)
{
	DocKey		doc = {.hook_id = spec->hook_id, .document_key = document_key};
	PendingRow *row;

	/* behind a row of its document: due once that one is gone */
	if (document_key != 0 && source != &coco_parked_source &&
		(hash_search(parked_docs, &doc, HASH_FIND, NULL) != NULL ||
		 (untracked_of(doc.hook_id) != NULL && untracked_doc_parked(doc))))
		TIMESTAMP_NOEND(next_attempt);

	row = &pending[npending++];
	Assert(npending <= PARK_BATCH);
	row->id = 0;
	row->doc = doc;
	row->attempts = attempts;
	row->next_attempt = next_attempt;
	strlcpy(row->webhook_id, webhook_id, sizeof(row->webhook_id));
	row->off = pending_messages.len;
	coco_message_append_carried(&pending_messages, msg, (const char *) spec,
								spec->spec_len, 1, event_id, attempts);
	row->len = pending_messages.len - row->off;

	if (source == &coco_parked_source)
	{
		int64		id = (int64) (intptr_t) source_arg;
		TakenRow   *t = hash_search(taken, &id, HASH_FIND, NULL);

		row->id = id;
		if (t)
			t->reparked = true;
		return;
	}
	parked_rows++;
	count_doc(row->doc, 1);
}

/* The pending inserts and updates; in a transaction, SPI connected. */
static void
write_pending(void)
{
	Datum	   *hook = palloc(sizeof(Datum) * npending);
	Datum	   *key = palloc(sizeof(Datum) * npending);
	bool	   *key_null = palloc(sizeof(bool) * npending);
	Datum	   *att = palloc(sizeof(Datum) * npending);
	Datum	   *next = palloc(sizeof(Datum) * npending);
	Datum	   *wid = palloc(sizeof(Datum) * npending);
	Datum	   *message = palloc(sizeof(Datum) * npending);
	Datum	   *id = palloc(sizeof(Datum) * npending);
	Datum	   *queued = palloc(sizeof(Datum) * npending);
	Oid			types[8] = {INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID,
		TIMESTAMPTZARRAYOID, TEXTARRAYOID, BYTEAARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID};
	Datum		args[8];
	char		nulls[8] = "        ";

	for (int pass = 0; pass < 2; pass++)
	{
		int			n = 0;

		/* first the inserts, then the updates of rows parked again */
		for (int i = 0; i < npending; i++)
		{
			PendingRow *r = &pending[i];
			bytea	   *b;

			if ((pass == 0) != (r->id == 0))
				continue;
			hook[n] = Int64GetDatum(r->doc.hook_id);
			key_null[n] = (r->doc.document_key == 0);
			key[n] = Int64GetDatum(r->doc.document_key);
			att[n] = Int32GetDatum(r->attempts);
			next[n] = TimestampTzGetDatum(r->next_attempt);
			wid[n] = CStringGetTextDatum(r->webhook_id);
			b = palloc(VARHDRSZ + r->len);
			SET_VARSIZE(b, VARHDRSZ + r->len);
			memcpy(VARDATA(b), pending_messages.data + r->off, r->len);
			message[n] = PointerGetDatum(b);
			id[n] = Int64GetDatum(r->id);
			{
				CocoEventHeader header;

				/* the event's commit: hook_stats' lag */
				memcpy(&header, pending_messages.data + r->off, sizeof(header));
				queued[n] = TimestampTzGetDatum(header.queued_at);
			}
			n++;
		}
		if (n == 0)
			continue;
		args[0] = coco_sql_array(hook, NULL, n, INT8OID);
		args[1] = coco_sql_array(key, key_null, n, INT8OID);
		args[2] = coco_sql_array(att, NULL, n, INT4OID);
		args[3] = coco_sql_array(next, NULL, n, TIMESTAMPTZOID);
		args[4] = coco_sql_array(wid, NULL, n, TEXTOID);
		args[5] = coco_sql_array(message, NULL, n, BYTEAOID);
		args[6] = coco_sql_array(id, NULL, n, INT8OID);
		args[7] = coco_sql_array(queued, NULL, n, TIMESTAMPTZOID);
		if (pass == 0)
		{
			/* WITH ORDINALITY keeps the order parked in: ids follow it */
			if (SPI_execute_with_args("INSERT INTO cocohooks.retry_queue "
									  "(hook_id, document_key, attempts, next_attempt, webhook_id, message, queued_at) "
									  "SELECT h, k, a, t, w, m, q FROM unnest($1, $2, $3, $4, $5, $6, $8) "
									  "WITH ORDINALITY AS r(h, k, a, t, w, m, q, o) ORDER BY o",
									  8, types, args, nulls, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not insert into cocohooks.retry_queue");
		}
		else if (SPI_execute_with_args("UPDATE cocohooks.retry_queue q "
									   "SET attempts = r.a, next_attempt = r.t, message = r.m "
									   "FROM unnest($1, $2, $3, $4, $5, $6, $7) AS r(h, k, a, t, w, m, i) "
									   "WHERE q.id = r.i",
									   7, types, args, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update cocohooks.retry_queue");
	}
}

/*
 * The deleted rows' documents: each one's first row left is due now.  In
 * the flush's transaction, SPI connected.
 */
static void
promote_next_rows(void)
{
	Datum	   *hook = palloc(sizeof(Datum) * ndeletes);
	Datum	   *key = palloc(sizeof(Datum) * ndeletes);
	Oid			types[2] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		args[2];
	int			n = 0;

	for (int i = 0; i < ndeletes; i++)
	{
		if (deletes[i].doc.document_key == 0)
			continue;
		hook[n] = Int64GetDatum(deletes[i].doc.hook_id);
		key[n] = Int64GetDatum(deletes[i].doc.document_key);
		n++;
	}
	if (n == 0)
		return;
	args[0] = coco_sql_array(hook, NULL, n, INT8OID);
	args[1] = coco_sql_array(key, NULL, n, INT8OID);
	if (SPI_execute_with_args("UPDATE cocohooks.retry_queue q SET next_attempt = now() "
							  "FROM (SELECT DISTINCT h, k FROM unnest($1, $2) AS d(h, k)) d "
							  "WHERE q.id = (SELECT min(o.id) FROM cocohooks.retry_queue o "
							  "WHERE o.hook_id = d.h AND o.document_key = d.k) "
							  "AND q.next_attempt = 'infinity'",
							  2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update cocohooks.retry_queue");
}

/*
 * Writes what was parked, parked again or finished since the last call, in
 * one transaction of its own.  Outside a transaction; can raise an error
 * (the worker then exits: what it parked is not finished for its source,
 * and is read again or saved).
 */
void
coco_parked_flush(void)
{
	MemoryContext old;

	if (npending == 0 && ndeletes == 0)
		return;
	old = begin_transaction("writing cocohooks.retry_queue");
	if (npending > 0)
		write_pending();
	if (ndeletes > 0)
	{
		Oid			type = INT8ARRAYOID;
		Datum	   *ids = palloc(sizeof(Datum) * ndeletes);
		Datum		arg;

		for (int i = 0; i < ndeletes; i++)
			ids[i] = Int64GetDatum(deletes[i].id);
		arg = coco_sql_array(ids, NULL, ndeletes, INT8OID);

		if (SPI_execute_with_args("DELETE FROM cocohooks.retry_queue WHERE id = ANY ($1)",
								  1, &type, &arg, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete from cocohooks.retry_queue");
		promote_next_rows();
	}
	end_transaction(old);

	for (int i = 0; i < ndeletes; i++)
		count_doc(deletes[i].doc, -1);
	parked_rows -= ndeletes;
	npending = ndeletes = 0;
	resetStringInfo(&pending_messages);
	coco_marks_set_parked((uint64) parked_rows);
}

/*
 * The pace of a hook became faster (hook_pace.c): the rows parked for it
 * (attempts 0: parked before their first attempt, which no retry is) come
 * due sooner alike, their time from since on multiplied by factor; the
 * rows waiting behind another of their document stay so.  Outside a
 * transaction, with nothing pending (flushed).
 */
void
coco_parked_pull_in(int64 hook_id, TimestampTz since, double factor)
{
	MemoryContext old;
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, FLOAT8OID};
	Datum		args[3];

	Assert(npending == 0);
	if (!available)
		return;
	args[0] = Int64GetDatum(hook_id);
	args[1] = TimestampTzGetDatum(since);
	args[2] = Float8GetDatum(factor);
	old = begin_transaction("pulling in rows of cocohooks.retry_queue");
	if (SPI_execute_with_args("UPDATE cocohooks.retry_queue "
							  "SET next_attempt = greatest(now(), $2 + (next_attempt - $2) * $3) "
							  "WHERE hook_id = $1 AND attempts = 0 AND next_attempt > now() "
							  "AND next_attempt <> 'infinity'",
							  3, types, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update cocohooks.retry_queue");
	end_transaction(old);
	/* some may be due now */
	next_poll = 0;
}

/*
 * A delivery taken back finished: for good (its row goes at the next
 * flush), or parked again (its row was updated).
 */
static void
parked_finished(uint64 wal_lsn, void *source_arg)
{
	int64		id = (int64) (intptr_t) source_arg;
	TakenRow   *t = hash_search(taken, &id, HASH_FIND, NULL);

	if (t == NULL)
		return;
	if (!t->reparked)
		deletes[ndeletes++] = *t;
	hash_search(taken, &id, HASH_REMOVE, NULL);
	ntaken--;
	/* the next row of its document may go once this one is deleted */
	next_poll = 0;
}

/*
 * Due parked deliveries, up to max, appended to out as carried messages,
 * their row ids in ids[]; the caller starts them with coco_parked_source
 * and the id as source_arg.  Looks at most once per POLL_INTERVAL_MS (at
 * once again after a full batch).  Outside a transaction.
 */
int
coco_parked_take(StringInfo out, int64 *ids, int max)
{
	TimestampTz now = GetCurrentTimestamp();
	int			n = 0;
	MemoryContext old;

	if (now < next_poll)
		return 0;
	next_poll = TimestampTzPlusMilliseconds(now, POLL_INTERVAL_MS);
	if (max <= 0 || coco_parked_full())
		return 0;
	if (!available)
	{
		check_available();
		if (!available)
			return 0;
	}
	if (parked_rows - ntaken <= 0)
		return 0;

	old = begin_transaction("taking due rows of cocohooks.retry_queue");
	{
		Oid			types[2] = {INT8ARRAYOID, INT4OID};
		Datum		args[2];
		HASH_SEQ_STATUS seq;
		TakenRow   *t;
		Datum	   *held = palloc(sizeof(Datum) * Max(ntaken + ndeletes, 1));
		int			nheld = 0;

		/* rows in flight, and rows finished but not deleted yet */
		hash_seq_init(&seq, taken);
		while ((t = hash_seq_search(&seq)) != NULL)
			held[nheld++] = Int64GetDatum(t->id);
		for (int i = 0; i < ndeletes; i++)
			held[nheld++] = Int64GetDatum(deletes[i].id);
		args[0] = coco_sql_array(held, NULL, nheld, INT8OID);
		args[1] = Int32GetDatum(max);

		/*
		 * Due rows not taken yet; of an ordered hook's document only the
		 * oldest is ever due (the others wait with next_attempt infinity).
		 */
		if (SPI_execute_with_args("SELECT id, hook_id, coalesce(document_key, 0), message "
								  "FROM cocohooks.retry_queue "
								  "WHERE next_attempt <= now() AND id <> ALL ($1) "
								  "ORDER BY next_attempt, id LIMIT $2",
								  2, types, args, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read cocohooks.retry_queue");
	}
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		bytea	   *b = DatumGetByteaPP(SPI_getbinval(tup, desc, 4, &isnull));
		TakenRow   *t = hash_search(taken, &id, HASH_ENTER, NULL);

		t->id = id;
		t->doc.hook_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		t->doc.document_key = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		t->reparked = false;
		ntaken++;
		ids[n++] = id;
		/* out lives outside the transaction: its own context grows it */
		appendBinaryStringInfo(out, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b));
	}
	end_transaction(old);
	if (n == max)
		next_poll = now;
	return n;
}

/* Looks for due rows again in a few milliseconds at the soonest (no room now). */
void
coco_parked_defer(void)
{
	TimestampTz soonest = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DEFER_MS);

	if (next_poll < soonest)
		next_poll = soonest;
}

/* Whether any parked row is not taken back yet. */
bool
coco_parked_waiting(void)
{
	return parked_rows - ntaken > 0 || !available;
}

/* Milliseconds until rows may be due to be taken, -1 if none waits. */
long
coco_parked_timeout_ms(void)
{
	if (parked_rows - ntaken <= 0)
		return -1;
	return Max(TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_poll), 0);
}
