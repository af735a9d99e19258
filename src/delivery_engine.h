/*-------------------------------------------------------------------------
 *
 * delivery_engine.h
 *	  The worker's delivery engine: from events to finished, logged
 *	  deliveries.
 *
 * The worker's loop (worker.c) takes events from its sources — the shared
 * queue, the events a previous worker saved (saved_events.c), the WAL
 * (wal_source.c) — and hands each to the engine with
 * coco_engine_start_event() while coco_engine_room() allows; the engine
 * does the rest: one delivery per event and target hook, admission per
 * receiver, retries, log rows, and the report of finished events, to the
 * queue's finished mark and to the event's source (CocoEventSource).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_DELIVERY_ENGINE_H
#define COCOHOOKS_DELIVERY_ENGINE_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "cocohooks.h"
#include "event_source.h"

extern void coco_engine_init(void);
extern void coco_engine_apply_settings(void);
extern int	coco_engine_wait_fd(void);

/* events that may start now (0 when deliveries or log rows are at their limit) */
extern int	coco_engine_room(void);
extern void coco_engine_start_event(const CocoEventHeader *msg, uint64 wal_lsn,
									const CocoEventSource *source,
									void *source_arg);
/* told of each event the engine starts, before its deliveries */
typedef void (*CocoStartWatch) (const CocoEventHeader *msg,
								const CocoEventSource *source);
extern void coco_engine_watch_starts(CocoStartWatch watch);
extern void coco_engine_note_skipped(const CocoEventHeader *msg);
extern void coco_engine_give_up_event(const CocoEventHeader *msg, uint64 wal_lsn,
									  const CocoEventSource *source,
									  void *source_arg, const char *error);

/* starts due retries, lets libcurl progress, logs and releases what finished */
extern void coco_engine_progress(void);
extern void coco_engine_flush_log(void);

/* milliseconds until libcurl or a retry needs the engine, -1 if nothing waits */
extern void coco_engine_send_posted(void);
extern long coco_engine_timeout_ms(void);
extern int	coco_engine_in_flight(void);
extern int	coco_engine_waiting_for_turn(void);
extern void coco_engine_event_counts(uint64 *started, uint64 *released);

extern bool coco_engine_uses_hook(int64 hook_id);

/* appends every unfinished delivery as a carried message; returns how many */
extern uint64 coco_engine_save_unfinished(StringInfo buf);

#endif							/* COCOHOOKS_DELIVERY_ENGINE_H */
