/*-------------------------------------------------------------------------
 *
 * redeliver.c
 *	  cocohooks.redeliver(delivery_id): send a logged delivery again.
 *
 * The delivery log keeps the payload of failed deliveries (of all of them
 * with log_deliveries = 'all').  redeliver() queues that payload again for
 * the same hook, under the same webhook-id and with the same body text, so
 * a receiver that processed it after all recognises it.  The hook's
 * current URL, headers, secret, timeout and retries apply.  Like post_*
 * events, the redelivery is queued when the calling transaction commits.
 *
 * Runs in: backends (the SQL function).
 *
 * Invariants:
 *	- the log row and the hook are read as the catalog's owner, but the
 *	  caller must own the hook's collection, as for the hook itself;
 *	- the event keeps its id (the webhook-id less its "_<hook id>") and its
 *	  body text, built again from the stored jsonb (payload.c);
 *	- it is sent outside any document order (COCO_REF_UNORDERED), and
 *	  only if the calling transaction commits (event_emit.c);
 *	- it names the hook's current settings version, as new events do.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "as_owner.h"
#include "cocohooks.h"
#include "event_emit.h"
#include "event_message.h"
#include "hook_admin.h"
#include "payload.h"
#include "settings.h"

PG_FUNCTION_INFO_V1(cocohooks_redeliver);

enum
{
	COL_HOOK_ID = 1, COL_EVENT, COL_COLLECTION, COL_DOCUMENT_ID, COL_PAYLOAD,
	COL_WEBHOOK_ID, COL_HOOK_EXISTS, COL_URL, COL_HEADERS, COL_SECRET,
	COL_TIMEOUT, COL_RETRIES, COL_COLLECTION_OID, COL_SETTINGS_VERSION
};

static char *
text_col(int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? NULL : TextDatumGetCString(d);
}

Datum
cocohooks_redeliver(PG_FUNCTION_ARGS)
{
	int64		delivery_id;
	CocoAsOwner st;
	Datum		args[1];
	Oid			types[1] = {INT8OID};
	bool		isnull;
	int64		hook_id;
	char	   *event;
	char	   *collection;
	char	   *document_id;
	char	   *payload;
	Datum		payload_datum;
	bool		payload_null;
	Jsonb	   *stored;
	char	   *webhook_id;
	char	   *event_id;
	char		suffix[32];
	int			kind;
	Oid			relid;
	StringInfoData spec;
	StringInfoData docid_json;
	StringInfoData message;
	MemoryContext caller = CurrentMemoryContext;

	coco_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("delivery_id must not be null")));
	delivery_id = PG_GETARG_INT64(0);
	args[0] = Int64GetDatum(delivery_id);

	coco_begin_as_owner(&st);
	if (SPI_execute_with_args("SELECT d.hook_id, d.event, d.collection, d.document_id, "
							  "       d.payload, d.webhook_id, h.id IS NOT NULL, "
							  "       h.url, h.headers, h.secret, h.timeout_ms, h.max_retries, "
							  "       h.collection::pg_catalog.oid, "
							  /* NULL before ALTER EXTENSION UPDATE to 0.3.0 */
							  "       (pg_catalog.to_jsonb(h) OPERATOR(pg_catalog.->>) 'settings_version')::pg_catalog.int4 "
							  "FROM cocohooks.deliveries d "
							  "LEFT JOIN cocohooks.hooks h ON h.id = d.hook_id "
							  "WHERE d.id = $1",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read cocohooks.deliveries");
	if (SPI_processed == 0)
	{
		coco_end_as_owner(&st);
		PG_RETURN_BOOL(false);
	}

	hook_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										  COL_HOOK_ID, &isnull));
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									COL_HOOK_EXISTS, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("hook %lld of delivery %lld no longer exists",
						(long long) hook_id, (long long) delivery_id),
				 errdetail("A delivery is sent again to its own hook, which was unregistered.")));

	/* what we take from the row must outlive SPI */
	MemoryContextSwitchTo(caller);
	payload_datum = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								  COL_PAYLOAD, &payload_null);
	stored = payload_null ? NULL : DatumGetJsonbPCopy(payload_datum);
	event = text_col(COL_EVENT, &isnull);
	collection = text_col(COL_COLLECTION, &isnull);
	document_id = text_col(COL_DOCUMENT_ID, &isnull);
	webhook_id = text_col(COL_WEBHOOK_ID, &isnull);
	kind = coco_event_from_name(event);
	if (kind < 0)
		elog(ERROR, "unexpected event \"%s\" in cocohooks.deliveries", event);

	/* the webhook-id is "<event id>_<hook id>": keep the event id */
	snprintf(suffix, sizeof(suffix), "_%lld", (long long) hook_id);
	event_id = pstrdup(webhook_id);
	if (strlen(event_id) > strlen(suffix) &&
		strcmp(event_id + strlen(event_id) - strlen(suffix), suffix) == 0)
		event_id[strlen(event_id) - strlen(suffix)] = '\0';
	if (strlen(event_id) > COCO_MAX_EVENT_ID_LEN)
		event_id[COCO_MAX_EVENT_ID_LEN] = '\0';

	initStringInfo(&spec);
	{
		bool		vnull;
		Datum		version = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											COL_SETTINGS_VERSION, &vnull);

		/* sent when asked: an old state has no place in a document's order */
		if (!vnull)
			coco_hook_ref_append(&spec, hook_id, (uint32) DatumGetInt32(version), true);
		else
		{
			bool		hnull;
			bool		snull;
			Datum		headers = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												COL_HEADERS, &hnull);
			char	   *secret = text_col(COL_SECRET, &snull);
			bool		retries_null;
			Datum		retries = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												COL_RETRIES, &retries_null);

			coco_hook_spec_append(&spec, hook_id, text_col(COL_URL, &isnull),
								  hnull ? NULL : DatumGetJsonbPCopy(headers), secret,
								  DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc,
															  COL_TIMEOUT, &isnull)),
								  retries_null ? COCO_RETRIES_UNLIMITED : DatumGetInt32(retries),
								  0);
		}
	}

	/*
	 * The caller must own the hook's collection, as for the hook itself.
	 * (This runs a query: everything was taken from our row above.)
	 */
	relid = coco_hook_collection_for_change(hook_id, &st);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("hook %lld of delivery %lld no longer exists",
						(long long) hook_id, (long long) delivery_id)));
	if (stored == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("delivery %lld has no stored payload", (long long) delivery_id),
				 errdetail("Payloads are kept for failed deliveries, and for all deliveries while \"%s\" is \"all\".",
						   "cocohooks.log_deliveries")));
	payload = coco_body_from_jsonb(stored, (CocoEventKind) kind);

	initStringInfo(&docid_json);
	if (document_id)
		escape_json(&docid_json, document_id);
	else
		appendStringInfoString(&docid_json, "null");

	coco_end_as_owner(&st);
	initStringInfo(&message);
	coco_message_append(&message, (CocoEventKind) kind, relid,
						spec.data, spec.len, 1,
						collection, strlen(collection),
						docid_json.data, docid_json.len,
						event_id, 0, 0, payload, strlen(payload));
	coco_emit_redelivery(message.data, message.len);

	PG_RETURN_BOOL(true);
}
