/*-------------------------------------------------------------------------
 *
 * payload.h
 *	  The JSON body of an event.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_PAYLOAD_H
#define COCOHOOKS_PAYLOAD_H

#include "postgres.h"

#include "access/htup.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

#include "cocohooks.h"
#include "hook_cache.h"

extern char *coco_document_id_json(CocoTableHooks *th, Relation rel,
								   HeapTuple tuple);
extern void coco_build_body(StringInfo buf, CocoEventKind event,
							CocoTableHooks *th, Relation rel,
							HeapTuple document, HeapTuple old_row,
							const char *document_id, const CocoExclusion *ex);

extern void coco_build_backfill_body(StringInfo buf, CocoTableHooks *th,
									 Relation rel, HeapTuple row,
									 const char *document_id,
									 const CocoExclusion *ex);
extern char *coco_body_from_jsonb(Jsonb *payload, CocoEventKind event);

#endif							/* COCOHOOKS_PAYLOAD_H */
