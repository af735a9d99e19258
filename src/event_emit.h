/*-------------------------------------------------------------------------
 *
 * event_emit.h
 *	  Where an event leaves the backend that caused it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_EVENT_EMIT_H
#define COCOHOOKS_EVENT_EMIT_H

#include "postgres.h"

extern void coco_emit_at_once(char *message, Size len);
extern void coco_emit_at_commit(char *message, Size len);
extern void coco_emit_messages_at_once(char *messages, Size len);
extern void coco_emit_messages_at_commit(char *messages, Size len);
extern void coco_emit_redelivery(char *message, Size len);
extern uint64 coco_wal_log_message(char *message, Size len, bool transactional);

#endif							/* COCOHOOKS_EVENT_EMIT_H */
