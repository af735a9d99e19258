/*-------------------------------------------------------------------------
 *
 * delivery_log.c
 *	  Writes finished deliveries to cocohooks.deliveries, disables the hooks
 *	  the worker gives up on, and prunes old log rows.
 *
 * Called by the worker, outside any transaction, with a batch of rows; one
 * short transaction inserts them all with a single statement over arrays,
 * so the cost per row is small and no HTTP work ever happens inside a
 * transaction.  The hooks gone_hooks.c names are disabled in the same
 * transaction (their parked deliveries made due), and the hooks' clocks
 * of failures that changed are written (failing_hooks.c).  If the extension is not installed (yet, or any more) the
 * rows are skipped: failures have already reached the server log.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- each write or prune is one short transaction, begun and ended here:
 *	  the caller must not be in one;
 *	- coco_log_write and coco_log_prune never raise an error: a failure is
 *	  reported, its transaction aborted and the caller told (false, or no
 *	  rows deleted), so the worker keeps the deliveries it holds;
 *	- the INSERT's plan is kept across calls (SPI_keepplan), and prepared
 *	  again after a failure or once ALTER EXTENSION UPDATE adds the
 *	  response or batch_id column;
 *	- the caller's memory context is current again on return.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "delivery_log.h"
#include "failing_hooks.h"
#include "gone_hooks.h"
#include "sql_array.h"

#define NCOLS 15

static SPIPlanPtr insert_plan = NULL;
static int	insert_plan_ncols = 0;

/*
 * one INSERT over arrays; the 0.3.0 log has batch_id, the 0.2.0 one
 * response, 0.1.0's neither
 */
#define LOG_INSERT(col, sel, unnest, alias) \
"INSERT INTO cocohooks.deliveries (hook_id, event, collection, document_id, " \
"success, status_code, error, attempts, duration_ms, queued_at, finished_at, " \
"webhook_id, payload" col ") " \
"SELECT h, e, c, d, s, sc, er, a, du, q, f, w, p::pg_catalog.jsonb" sel " " \
"FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), " \
"pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.text[]), " \
"pg_catalog.unnest($4::pg_catalog.text[]), pg_catalog.unnest($5::pg_catalog.bool[]), " \
"pg_catalog.unnest($6::pg_catalog.int4[]), pg_catalog.unnest($7::pg_catalog.text[]), " \
"pg_catalog.unnest($8::pg_catalog.int4[]), pg_catalog.unnest($9::pg_catalog.float8[]), " \
"pg_catalog.unnest($10::pg_catalog.timestamptz[]), " \
"pg_catalog.unnest($11::pg_catalog.timestamptz[]), pg_catalog.unnest($12::pg_catalog.text[]), " \
"pg_catalog.unnest($13::pg_catalog.text[])" unnest ") " \
"AS r(h, e, c, d, s, sc, er, a, du, q, f, w, p" alias ")"

static const char *insert_sql =
LOG_INSERT(", response, batch_id", ", rs, b",
		   ", pg_catalog.unnest($14::pg_catalog.text[]), pg_catalog.unnest($15::pg_catalog.text[])",
		   ", rs, b");
static const char *insert_sql_0_2 =
LOG_INSERT(", response", ", rs", ", pg_catalog.unnest($14::pg_catalog.text[])", ", rs");
static const char *insert_sql_0_1 = LOG_INSERT("", "", "", "");

/* The log table's oid, or InvalidOid if the extension is not installed. */
static Oid
log_table(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);

	return OidIsValid(nsp) ? get_relname_relid("deliveries", nsp) : InvalidOid;
}

/*
 * A response body as text for the log: valid in the database encoding (a
 * byte that is not is shown as '?', a character cut at the end is left out)
 * and without NUL bytes.
 */
char *
coco_log_text(const char *bytes, int len)
{
	int			enc = GetDatabaseEncoding();
	char	   *out = palloc(len + 1);
	int			o = 0;
	int			i = 0;

	while (i < len)
	{
		int			l = pg_encoding_mblen(enc, bytes + i);

		if (i + l > len)
			break;				/* a character cut at the excerpt's end */
		if (bytes[i] == '\0' || pg_encoding_verifymbchar(enc, bytes + i, l) != l)
		{
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, bytes + i, l);
		o += l;
		i += l;
	}
	out[o] = '\0';
	return out;
}

/* A body (UTF-8, see coco_message_end) as text in the database's encoding. */
static Datum
payload_text(const char *body, uint32 len)
{
	int			encoding = GetDatabaseEncoding();

	if (encoding != PG_UTF8 && encoding != PG_SQL_ASCII)
	{
		char	   *converted = pg_any_to_server(body, len, PG_UTF8);

		if (converted != body)
			return CStringGetTextDatum(converted);
	}
	return PointerGetDatum(cstring_to_text_with_len(body, len));
}

/*
 * Disables the hooks gone_hooks.c names (410 Gone, or failing too long);
 * their parked deliveries become due now, so that they are failed and
 * logged now rather than at their retry time.
 */
static void
disable_gone_hooks(const CocoHookDisable *disables, int ndisables)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);
	Oid			hooks = OidIsValid(nsp) ? get_relname_relid("hooks", nsp) : InvalidOid;
	bool		has_reason;
	bool		has_parked;

	if (!OidIsValid(hooks) || ndisables == 0)
		return;
	has_reason = get_attnum(hooks, "disabled_reason") != InvalidAttrNumber;
	has_parked = OidIsValid(get_relname_relid("retry_queue", nsp));
	for (int i = 0; i < ndisables; i++)
	{
		Datum		args[2] = {Int64GetDatum(disables[i].hook_id),
		CStringGetTextDatum(disables[i].reason)};
		Oid			types[2] = {INT8OID, TEXTOID};

		if (SPI_execute_with_args(has_reason ?
								  "UPDATE cocohooks.hooks SET enabled = false, disabled_reason = $2 "
								  "WHERE id = $1 AND enabled" :
								  "UPDATE cocohooks.hooks SET enabled = false WHERE id = $1 AND enabled",
								  has_reason ? 2 : 1, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update cocohooks.hooks");
		if (has_parked &&
			SPI_execute_with_args("UPDATE cocohooks.retry_queue SET next_attempt = pg_catalog.now() "
								  "WHERE hook_id = $1 AND next_attempt > pg_catalog.now()",
								  1, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update cocohooks.retry_queue");
	}
}

/*
 * Inserts the rows, disables the gone hooks and writes the clocks of
 * failures, in one transaction.  May raise errors.
 */
static void
insert_rows(CocoLogRow *rows, int nrows,
			const CocoHookDisable *disables, int ndisables)
{
	static const Oid elemtypes[NCOLS] = {
		INT8OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, INT4OID, TEXTOID,
		INT4OID, FLOAT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID
	};
	Oid			argtypes[NCOLS];
	Datum		args[NCOLS];
	Oid			logrel;

	if (nrows == 0 && ndisables == 0 && !coco_failing_dirty())
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "writing cocohooks.deliveries");
	logrel = log_table();
	if (OidIsValid(logrel))
	{
		Datum	   *values = palloc(sizeof(Datum) * Max(nrows, 1));
		bool	   *nulls = palloc(sizeof(bool) * Max(nrows, 1));
		bool		has_response = get_attnum(logrel, "response") != InvalidAttrNumber;
		bool		has_batch = get_attnum(logrel, "batch_id") != InvalidAttrNumber;
		int			ncols = !has_response ? NCOLS - 2 : !has_batch ? NCOLS - 1 : NCOLS;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		disable_gone_hooks(disables, ndisables);
		coco_failing_write();
		if (nrows == 0)
			goto done;
		for (int c = 0; c < ncols; c++)
		{
			for (int i = 0; i < nrows; i++)
			{
				CocoLogRow *r = &rows[i];

				nulls[i] = false;
				switch (c)
				{
					case 0:
						values[i] = Int64GetDatum(r->hook_id);
						break;
					case 1:
						values[i] = CStringGetTextDatum(r->event);
						break;
					case 2:
						values[i] = CStringGetTextDatum(r->collection);
						break;
					case 3:
						nulls[i] = (r->document_id == NULL);
						values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(r->document_id);
						break;
					case 4:
						values[i] = BoolGetDatum(r->success);
						break;
					case 5:
						nulls[i] = (r->status_code == 0);
						values[i] = Int32GetDatum((int32) r->status_code);
						break;
					case 6:
						nulls[i] = (r->error == NULL);
						values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(r->error);
						break;
					case 7:
						values[i] = Int32GetDatum(r->attempts);
						break;
					case 8:
						values[i] = Float8GetDatum(r->duration_ms);
						break;
					case 9:
						values[i] = TimestampTzGetDatum(r->queued_at);
						break;
					case 10:
						values[i] = TimestampTzGetDatum(r->finished_at);
						break;
					case 11:
						values[i] = CStringGetTextDatum(r->webhook_id);
						break;
					case 12:
						/* bodies are UTF-8 (coco_message_end); the log is in the database's encoding */
						nulls[i] = (r->payload == NULL);
						values[i] = nulls[i] ? (Datum) 0 : payload_text(r->payload, r->payload_len);
						break;
					case 13:
						nulls[i] = (r->response == NULL);
						values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(r->response);
						break;
					case 14:
						nulls[i] = (r->batch_id == NULL);
						values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(r->batch_id);
						break;
				}
			}
			args[c] = coco_sql_array(values, nulls, nrows, elemtypes[c]);
			argtypes[c] = get_array_type(elemtypes[c]);
		}

		if (insert_plan != NULL && insert_plan_ncols != ncols)
		{
			/* ALTER EXTENSION UPDATE added columns */
			SPI_freeplan(insert_plan);
			insert_plan = NULL;
		}
		if (insert_plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare(ncols == NCOLS ? insert_sql :
										   ncols == NCOLS - 1 ? insert_sql_0_2 : insert_sql_0_1,
										   ncols, argtypes);

			if (plan == NULL)
				elog(ERROR, "could not prepare cocohooks.deliveries insert: %s",
					 SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "could not keep cocohooks.deliveries insert plan");
			insert_plan = plan;
			insert_plan_ncols = ncols;
		}
		if (SPI_execute_plan(insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into cocohooks.deliveries");
done:
		SPI_finish();
	}

	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * Writes a batch of rows.  A failure (the table altered or locked away, a
 * full disk) is reported and the batch skipped rather than taking the
 * worker down with the deliveries it holds; failed deliveries were already
 * reported to the server log one by one.  Call outside any transaction.
 */
bool
coco_log_write(CocoLogRow *rows, int nrows,
			   const CocoHookDisable *disables, int ndisables)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		insert_rows(rows, nrows, disables, ndisables);
		/* committing leaves us in TopMemoryContext */
		MemoryContextSwitchTo(cxt);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		/* the saved plan may be what failed; prepare it afresh next time */
		if (insert_plan)
			SPI_freeplan(insert_plan);
		insert_plan = NULL;
		ereport(LOG,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("cocohooks could not write %d rows to cocohooks.deliveries", nrows)));
		pgstat_report_activity(STATE_IDLE, NULL);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * One kind of row past its retention: up to batch of them, the oldest
 * first, each kind through its own partial index on finished_at, so that
 * successes kept for days are never walked over to reach old failures, nor
 * the other way round.  In the prune's transaction, SPI connected.
 */
static int
prune_kind(bool success, int retention_min, int batch)
{
	Datum		args[2] = {Int32GetDatum(retention_min), Int32GetDatum(batch)};
	Oid			types[2] = {INT4OID, INT4OID};

	if (retention_min <= 0)
		return 0;
	if (SPI_execute_with_args(success ?
							  "DELETE FROM cocohooks.deliveries WHERE id IN "
							  "(SELECT id FROM cocohooks.deliveries "
							  " WHERE success AND finished_at < pg_catalog.now() - "
							  "       pg_catalog.make_interval(mins => $1) "
							  " ORDER BY finished_at LIMIT $2 "
							  " FOR UPDATE SKIP LOCKED)" :
							  "DELETE FROM cocohooks.deliveries WHERE id IN "
							  "(SELECT id FROM cocohooks.deliveries "
							  " WHERE NOT success AND finished_at < pg_catalog.now() - "
							  "       pg_catalog.make_interval(mins => $1) "
							  " ORDER BY finished_at LIMIT $2 "
							  " FOR UPDATE SKIP LOCKED)",
							  2, types, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune cocohooks.deliveries");
	return (int) SPI_processed;
}

/*
 * Deletes up to batch rows of successful deliveries that finished more
 * than retention_min minutes ago, and up to batch rows of failed ones past
 * retention_failed_min (0: none of that kind), in one short transaction
 * (row locks only).  Returns the larger of the two counts: batch means
 * more may be due.  Call outside any transaction; errors are reported, not
 * raised.
 */
int
coco_log_prune(int retention_min, int retention_failed_min, int batch)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile int deleted = 0;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "pruning cocohooks.deliveries");
		if (OidIsValid(log_table()))
		{
			int			ok;
			int			failed;

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			ok = prune_kind(true, retention_min, batch);
			failed = prune_kind(false, retention_failed_min, batch);
			SPI_finish();
			/* one line per pass, for a test of the bound and for debugging */
			if (ok > 0 || failed > 0)
				elog(DEBUG1, "cocohooks pruned %d rows of successful and %d rows of failed deliveries",
					 ok, failed);
			deleted = Max(ok, failed);
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		deleted = 0;
	}
	PG_END_TRY();
	return deleted;
}
