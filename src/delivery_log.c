/*-------------------------------------------------------------------------
 *
 * delivery_log.c
 *	  Writes finished deliveries to cocohooks.deliveries.
 *
 * Called by the worker, outside any transaction, with a batch of rows; one
 * short transaction inserts them all with a single statement over arrays,
 * so the cost per row is small and no HTTP work ever happens inside a
 * transaction.  If the extension is not installed (yet, or any more) the
 * rows are skipped: failures have already reached the server log.
 *
 *-------------------------------------------------------------------------
 */
#include "delivery_log.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#define NCOLS 13

static SPIPlanPtr insert_plan = NULL;

static const char *insert_sql =
"INSERT INTO cocohooks.deliveries (hook_id, event, collection, document_id, "
"success, status_code, error, attempts, duration_ms, queued_at, finished_at, "
"webhook_id, payload) "
"SELECT h, e, c, d, s, sc, er, a, du, q, f, w, p::pg_catalog.jsonb "
"FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), "
"pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.text[]), "
"pg_catalog.unnest($4::pg_catalog.text[]), pg_catalog.unnest($5::pg_catalog.bool[]), "
"pg_catalog.unnest($6::pg_catalog.int4[]), pg_catalog.unnest($7::pg_catalog.text[]), "
"pg_catalog.unnest($8::pg_catalog.int4[]), pg_catalog.unnest($9::pg_catalog.float8[]), "
"pg_catalog.unnest($10::pg_catalog.timestamptz[]), "
"pg_catalog.unnest($11::pg_catalog.timestamptz[]), pg_catalog.unnest($12::pg_catalog.text[]), "
"pg_catalog.unnest($13::pg_catalog.text[])) "
"AS r(h, e, c, d, s, sc, er, a, du, q, f, w, p)";

static bool
log_table_exists(void)
{
	Oid			nsp = get_namespace_oid("cocohooks", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("deliveries", nsp));
}

static Datum
make_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval, typalign));
}

/* Inserts the rows in one transaction.  May raise errors. */
static void
insert_rows(CocoLogRow *rows, int nrows)
{
	static const Oid elemtypes[NCOLS] = {
		INT8OID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, INT4OID, TEXTOID,
		INT4OID, FLOAT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID
	};
	Oid			argtypes[NCOLS];
	Datum		args[NCOLS];

	if (nrows == 0)
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "writing cocohooks.deliveries");

	if (log_table_exists())
	{
		Datum	   *values = palloc(sizeof(Datum) * nrows);
		bool	   *nulls = palloc(sizeof(bool) * nrows);

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");

		for (int c = 0; c < NCOLS; c++)
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
						nulls[i] = (r->payload == NULL);
						values[i] = nulls[i] ? (Datum) 0 :
							PointerGetDatum(cstring_to_text_with_len(r->payload, r->payload_len));
						break;
				}
			}
			args[c] = make_array(values, nulls, nrows, elemtypes[c]);
			argtypes[c] = get_array_type(elemtypes[c]);
		}

		if (insert_plan == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare(insert_sql, NCOLS, argtypes);

			if (plan == NULL)
				elog(ERROR, "could not prepare cocohooks.deliveries insert: %s",
					 SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "could not keep cocohooks.deliveries insert plan");
			insert_plan = plan;
		}
		if (SPI_execute_plan(insert_plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into cocohooks.deliveries");
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
void
coco_log_write(CocoLogRow *rows, int nrows)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		insert_rows(rows, nrows);
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
	}
	PG_END_TRY();
}

/*
 * Deletes up to batch rows of cocohooks.deliveries that finished more than
 * retention_min minutes ago, in one short transaction (the index on
 * finished_at finds them; row locks only).  Returns how many it deleted.
 * Call outside any transaction; errors are reported, not raised.
 */
int
coco_log_prune(int retention_min, int batch)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile int deleted = 0;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "pruning cocohooks.deliveries");
		if (log_table_exists())
		{
			Datum		args[2] = {Int32GetDatum(retention_min), Int32GetDatum(batch)};
			Oid			types[2] = {INT4OID, INT4OID};

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			if (SPI_execute_with_args("DELETE FROM cocohooks.deliveries WHERE id IN "
									  "(SELECT id FROM cocohooks.deliveries "
									  " WHERE finished_at < pg_catalog.now() - "
									  "       pg_catalog.make_interval(mins => $1) "
									  " ORDER BY finished_at LIMIT $2 "
									  " FOR UPDATE SKIP LOCKED)",
									  2, types, args, NULL, false, 0) != SPI_OK_DELETE)
				elog(ERROR, "could not prune cocohooks.deliveries");
			deleted = (int) SPI_processed;
			SPI_finish();
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
