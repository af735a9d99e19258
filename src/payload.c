/*-------------------------------------------------------------------------
 *
 * payload.c
 *	  The JSON bodies of hook deliveries.
 *
 * A document is rendered exactly as to_jsonb(row)::text renders it (by
 * row_json.c), so users can compare it with to_jsonb on their side.
 * The body's keys and their order are those of the contract:
 *
 *	pre_save	event, collection, operation, document[, old_data]
 *	post_save	event, collection, operation, document, document_id[, old_data]
 *	pre_delete	event, collection, document_id, document
 *	post_delete event, collection, document_id, document
 *
 * Runs in: backends (the row trigger; redeliver(), which builds a body
 * again from the delivery log), and the worker (backfills).
 *
 * Invariants:
 *	- all functions allocate in the current memory context and may raise
 *	  errors (type output functions), so none runs in a commit callback;
 *	- a body built again from the log has the keys, in the order, and the
 *	  text of the one first sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "cocohooks.h"
#include "hook_cache.h"
#include "payload.h"
#include "row_json.h"

/* Appends a row as to_jsonb(row)::text renders it. */
static void
append_row(StringInfo buf, CocoTableHooks *th, Relation rel, HeapTuple tuple,
		   const CocoExclusion *ex)
{
	coco_row_json_append(buf, th->row_plan, &th->to_jsonb,
						 RelationGetDescr(rel), tuple, ex);
}

/* The primary key as a JSON string, or null when the table has none. */
char *
coco_document_id_json(CocoTableHooks *th, Relation rel, HeapTuple tuple)
{
	StringInfoData buf;
	Datum		value;
	bool		isnull;

	if (th->pk_attnum <= 0)
		return pstrdup("null");
	value = heap_getattr(tuple, th->pk_attnum, RelationGetDescr(rel), &isnull);
	if (isnull)
		return pstrdup("null");
	initStringInfo(&buf);
	escape_json(&buf, OutputFunctionCall(&th->pk_out, value));
	return buf.data;
}

/*
 * Appends the body of event for a row of rel: document is the row the
 * event is about, old_row the row before an update (NULL otherwise), and
 * document_id its JSON text from coco_document_id_json (unused for
 * pre_save); ex, if not NULL, the columns left out of document and
 * old_data; operation, if not NULL, the operation of a save in place of
 * "create" or "update".
 */
static void
build_body(StringInfo buf, CocoEventKind event, CocoTableHooks *th,
		   Relation rel, HeapTuple document, HeapTuple old_row,
		   const char *document_id, const CocoExclusion *ex,
		   const char *operation)
{
	appendStringInfoString(buf, "{\"event\": ");
	escape_json(buf, coco_event_names[event]);
	appendStringInfoString(buf, ", \"collection\": ");
	escape_json(buf, th->collection);

	switch (event)
	{
		case COCO_PRE_SAVE:
		case COCO_POST_SAVE:
			appendStringInfoString(buf, ", \"operation\": ");
			/* a word of ours, with nothing to escape */
			appendStringInfoChar(buf, '"');
			appendStringInfoString(buf, operation ? operation : old_row ? "update" : "create");
			appendStringInfoChar(buf, '"');
			appendStringInfoString(buf, ", \"document\": ");
			append_row(buf, th, rel, document, ex);
			if (event == COCO_POST_SAVE)
			{
				appendStringInfoString(buf, ", \"document_id\": ");
				appendStringInfoString(buf, document_id);
			}
			if (old_row)
			{
				appendStringInfoString(buf, ", \"old_data\": ");
				append_row(buf, th, rel, old_row, ex);
			}
			break;
		case COCO_PRE_DELETE:
		case COCO_POST_DELETE:
			appendStringInfoString(buf, ", \"document_id\": ");
			appendStringInfoString(buf, document_id);
			appendStringInfoString(buf, ", \"document\": ");
			append_row(buf, th, rel, document, ex);
			break;
		default:
			elog(ERROR, "unexpected cocohooks event %d", (int) event);
	}
	appendStringInfoChar(buf, '}');
}

void
coco_build_body(StringInfo buf, CocoEventKind event, CocoTableHooks *th,
				Relation rel, HeapTuple document, HeapTuple old_row,
				const char *document_id, const CocoExclusion *ex)
{
	build_body(buf, event, th, rel, document, old_row, document_id, ex, NULL);
}

/*
 * Appends the body of a backfill's event for a row of rel: a post_save
 * whose operation is "backfill", with the row as stored and no old_data.
 */
void
coco_build_backfill_body(StringInfo buf, CocoTableHooks *th, Relation rel,
						 HeapTuple row, const char *document_id,
						 const CocoExclusion *ex)
{
	build_body(buf, COCO_POST_SAVE, th, rel, row, NULL, document_id, ex, "backfill");
}

/*
 * The body of a delivery again, from the payload stored as jsonb in the
 * delivery log: the top-level keys in the order of the contract, each value
 * rendered as jsonb renders it, which is how it was rendered the first
 * time.  So the text is the one first sent.
 */
char *
coco_body_from_jsonb(Jsonb *payload, CocoEventKind event)
{
	static const char *const save_keys[] = {
		"event", "collection", "operation", "document", "document_id", "old_data", NULL
	};
	static const char *const delete_keys[] = {
		"event", "collection", "document_id", "document", NULL
	};
	const char *const *keys = (event == COCO_PRE_DELETE || event == COCO_POST_DELETE) ?
		delete_keys : save_keys;
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; keys[i]; i++)
	{
		JsonbValue	v;
		Jsonb	   *value;

		if (!JB_ROOT_IS_OBJECT(payload) ||
			getKeyJsonValueFromContainer(&payload->root, keys[i], strlen(keys[i]), &v) == NULL)
			continue;
		value = JsonbValueToJsonb(&v);
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		escape_json(&buf, keys[i]);
		appendStringInfoString(&buf, ": ");
		JsonbToCString(&buf, &value->root, VARSIZE(value));
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}
