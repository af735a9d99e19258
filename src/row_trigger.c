/*-------------------------------------------------------------------------
 *
 * row_trigger.c
 *	  The row trigger that turns a row change into event messages.
 *
 * register_hook() attaches this function (hook_triggers.c) as a BEFORE row
 * trigger (pre_* events) and an AFTER row trigger (post_* events).  For
 * each row it:
 *
 *	1. returns at once unless cocohooks.api_session is on, so direct writes
 *	   cost one function call;
 *	2. asks the per-backend hook cache which enabled hooks want the event
 *	   (no catalog access unless the cache was invalidated);
 *	3. builds the body and one message carrying it and the hooks' settings;
 *	4. pushes pre_* messages into the shared queue at once (event_emit.c;
 *	   an ON CONFLICT insert's pre_save waits until the statement shows
 *	   whether the row was inserted, upsert_tracker.c), and hands post_*
 *	   ones to pending_events.c, which queues them only if the transaction
 *	   commits.
 *
 * Triggers fire in name order, so a pre_* document could miss what another
 * BEFORE trigger does after ours.  The BEFORE trigger is named to sort after
 * every name of letters, digits and underscores ("~cocohooks_pre"), and the
 * hook cache looks at the table's triggers: if a BEFORE row trigger still
 * fires after ours (its name sorts later: a non-ASCII one, say), the
 * operation's pre_* events are sent by the AFTER trigger instead, with the
 * row as stored, which every BEFORE trigger has seen (hook_triggers.c makes
 * the AFTER trigger cover those operations).  This does not depend on the
 * database's encoding or on any name.
 *
 * Runs in: backends running a row trigger.
 *
 * Invariants:
 *	- no catalog scan and no SPI per row: what a row needs comes from the
 *	  hook cache; work happens in the executor's per-tuple memory context;
 *	- the BEFORE trigger returns the row unchanged, the AFTER one nothing;
 *	- errors are raised before the change commits, and fail the writer's
 *	  statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "utils/rel.h"

#include "cocohooks.h"
#include "db_slots.h"
#include "event_emit.h"
#include "event_message.h"
#include "hook_cache.h"
#include "hook_filters.h"
#include "payload.h"
#include "settings.h"
#include "upsert_tracker.h"

PG_FUNCTION_INFO_V1(cocohooks_row_trigger);

static bool warned_not_preloaded = false;

/* Appends one message: these hooks' specs and the body without ex's columns. */
static void
append_message(StringInfo out, TriggerData *td, CocoTableHooks *th,
			   CocoEventKind event, const char *specs, int specs_len, int nspecs,
			   HeapTuple document, HeapTuple old_row, const char *document_id,
			   const CocoExclusion *ex)
{
	int			start;

	/* the body is written straight into the message, its last part */
	start = coco_message_begin(out, event, th->collection_relid,
							   specs, specs_len, nspecs,
							   th->collection, strlen(th->collection),
							   document_id, strlen(document_id),
							   coco_wal_mode() ? COCO_WAL_ID_PLACEHOLDER : NULL, 0, 0,
							   cocohooks_traceparent, cocohooks_tracestate);
	coco_build_body(out, event, th, td->tg_relation, document, old_row,
					document_id, ex);
	coco_message_end(out, start);
}

/*
 * The messages of an event whose hooks filter rows or leave columns
 * out: one per set of excluded columns, carrying the hooks of that set
 * that fire for this row (hook_filters.c).
 */
static void
append_filtered_messages(StringInfo out, TriggerData *td, CocoTableHooks *th,
						 CocoEventKind event, HeapTuple document,
						 HeapTuple old_row, const char *document_id,
						 const bool *fires, int nfire)
{
	CocoHookFilter *filters = th->filters[event];
	int			n = th->nhooks[event];
	StringInfoData specs;

	if (nfire == n && th->nexclusions == 0)
	{
		/* every hook fires with the whole row: the prebuilt list will do */
		append_message(out, td, th, event, th->hooks[event], th->hooks_len[event],
					   n, document, old_row, document_id, NULL);
		return;
	}
	initStringInfo(&specs);
	/* group -1: the whole row; then each set of excluded columns */
	for (int g = -1; g < th->nexclusions; g++)
	{
		int			nspecs = 0;

		resetStringInfo(&specs);
		for (int i = 0; i < n; i++)
		{
			if (!fires[i] || filters[i].exclusion != g)
				continue;
			appendBinaryStringInfo(&specs, th->hooks[event] + filters[i].spec_off,
								   filters[i].spec_len);
			nspecs++;
		}
		if (nspecs > 0)
			append_message(out, td, th, event, specs.data, specs.len, nspecs,
						   document, old_row, document_id,
						   g < 0 ? NULL : &th->exclusions[g]);
	}
	pfree(specs.data);
}

/*
 * Builds the message(s) of one event and sends them on: pre_* ones at once,
 * post_* ones at commit.  before: fired by the BEFORE trigger, where an
 * INSERT's pre_save may still turn into an update (ON CONFLICT DO UPDATE).
 */
static void
fire_event(TriggerData *td, CocoTableHooks *th, CocoEventKind event,
		   HeapTuple document, HeapTuple old_row, bool is_update, bool before)
{
	char	   *document_id;
	StringInfoData messages;
	bool	   *fires = NULL;
	int			nfire = 0;

	if (th->nhooks[event] == 0)
		return;
	if (before && event == COCO_PRE_SAVE && is_update)
		coco_upsert_conflict(td->tg_relation);

	/* which hooks want the row, before any work on it (hook_filters.c) */
	if (th->filters[event] != NULL)
	{
		fires = palloc(sizeof(bool) * th->nhooks[event]);
		for (int i = 0; i < th->nhooks[event]; i++)
			nfire += (fires[i] = coco_hook_filter_fires(th, &th->filters[event][i],
														 td->tg_relation, event,
														 document, old_row));
		if (nfire == 0)
			return;				/* no hook wants this row */
	}

	document_id = coco_document_id_json(th, td->tg_relation, document);

	initStringInfo(&messages);
	if (fires == NULL)
		append_message(&messages, td, th, event, th->hooks[event], th->hooks_len[event],
					   th->nhooks[event], document, old_row, document_id, NULL);
	else
		append_filtered_messages(&messages, td, th, event, document, old_row, document_id,
								 fires, nfire);

	if (event == COCO_PRE_SAVE || event == COCO_PRE_DELETE)
	{
		/* an ON CONFLICT DO UPDATE insert may yet turn into an update */
		if (before && event == COCO_PRE_SAVE && !is_update &&
			coco_upsert_hold(td->tg_relation, th->collection_relid,
							 messages.data, messages.len))
			return;
		coco_emit_messages_at_once(messages.data, messages.len);
	}
	else
		coco_emit_messages_at_commit(messages.data, messages.len);
}

Datum
cocohooks_row_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TriggerEvent tev;
	HeapTuple	result;
	HeapTuple	document;
	HeapTuple	old_row = NULL;
	bool		before;
	bool		is_update = false;
	bool		is_delete = false;
	int16		op;
	CocoTableHooks *th;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cocohooks.row_trigger() was not called by the trigger manager")));
	tev = td->tg_event;
	if (!TRIGGER_FIRED_FOR_ROW(tev) || TRIGGER_FIRED_INSTEAD(tev))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cocohooks.row_trigger() must be fired BEFORE or AFTER a row change")));

	before = TRIGGER_FIRED_BEFORE(tev);
	if (TRIGGER_FIRED_BY_UPDATE(tev))
	{
		document = td->tg_newtuple;
		old_row = td->tg_trigtuple;
		is_update = true;
		op = TRIGGER_TYPE_UPDATE;
	}
	else if (TRIGGER_FIRED_BY_INSERT(tev))
	{
		document = td->tg_trigtuple;
		op = TRIGGER_TYPE_INSERT;
	}
	else if (TRIGGER_FIRED_BY_DELETE(tev))
	{
		document = td->tg_trigtuple;
		is_delete = true;
		op = TRIGGER_TYPE_DELETE;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("cocohooks.row_trigger() must be fired by INSERT, UPDATE or DELETE")));

	/* a BEFORE trigger passes the row on unchanged; an AFTER one returns nothing */
	result = before ? document : NULL;

	if (!cocohooks_api_session)
		return PointerGetDatum(result);

	if (!coco_preloaded || !coco_dbslots_available())
	{
		if (!warned_not_preloaded)
			ereport(WARNING,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cocohooks hooks do not fire: cocohooks is not in \"shared_preload_libraries\""),
					 errhint("Add cocohooks to \"shared_preload_libraries\" and restart the server.")));
		warned_not_preloaded = true;
		return PointerGetDatum(result);
	}

	th = coco_hook_cache_lookup(td->tg_relation, td->tg_trigger->tgoid);
	if (before)
	{
		/* another BEFORE trigger fires after ours: the AFTER trigger sends it */
		if ((th->pre_in_after & op) == 0)
			fire_event(td, th, is_delete ? COCO_PRE_DELETE : COCO_PRE_SAVE,
					   document, old_row, is_update, true);
	}
	else
	{
		if (th->pre_in_after & op)
			fire_event(td, th, is_delete ? COCO_PRE_DELETE : COCO_PRE_SAVE,
					   document, old_row, is_update, false);
		fire_event(td, th, is_delete ? COCO_POST_DELETE : COCO_POST_SAVE,
				   document, old_row, is_update, false);
	}
	return PointerGetDatum(result);
}
