/*-------------------------------------------------------------------------
 *
 * hook_pace.h
 *	  Each hook's pace in the worker: requests started per second
 *	  (max_per_second), requests in flight (max_concurrent), and the
 *	  concurrency its receiver takes (429 and 503 lower it).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_HOOK_PACE_H
#define COCOHOOKS_HOOK_PACE_H

#include "postgres.h"

#include "lib/ilist.h"
#include "utils/timestamp.h"

/*
 * Deliveries waiting for their hook's pace in memory are bounded by this
 * multiple of cocohooks.max_concurrent_deliveries; each hook's line by a
 * bound of its own (hook_pace.c), at most a COCO_PACE_LINE_SHARE-th of
 * that.  Past them a delivery is parked (cocohooks.retry_queue); with no
 * such table the engine takes no new events past the total instead
 * (coco_engine_room).
 */
#define COCO_PACE_BACKLOG_FACTOR	4
#define COCO_PACE_LINE_SHARE		4

/* embedded in what is paced (the engine's Delivery); zeroed to start */
typedef struct CocoPaced
{
	dlist_node	node;			/* in its hook's line while it waits */
	void	   *hook;			/* its hook's pace, while waiting or admitted */
	uint32		epoch;			/* its hook's decreases when it was admitted */
	TimestampTz admitted_at;	/* for the hook's time per request */
	bool		waiting;		/* in its hook's line */
	bool		admitted;		/* holds one of its hook's places in flight */
} CocoPaced;

/* the struct of type that holds paced, a CocoPaced * in its field member */
#define coco_paced_container(type, member, paced) \
	((type *) ((char *) (paced) - offsetof(type, member)))

/* what the receiver said to an admitted request, for the window */
typedef enum CocoPaceOutcome
{
	COCO_PACE_SUCCESS,			/* 2xx: the window grows */
	COCO_PACE_SLOW_DOWN,		/* 429 or 503: the window shrinks */
	COCO_PACE_OTHER,			/* any other answer or failure */
	COCO_PACE_NOT_SENT			/* given up unsent: its token goes back */
} CocoPaceOutcome;

extern void coco_pace_init(MemoryContext cxt);

/* what coco_pace_admit() did with a request */
typedef enum CocoPaceAdmission
{
	COCO_PACE_ADMITTED,			/* may start now: holds a place of its hook
								 * until coco_pace_release() */
	COCO_PACE_WAITING,			/* waits in its hook's line, in arrival
								 * order, until coco_pace_pop_ready() hands
								 * it back admitted */
	COCO_PACE_PARK				/* its hook's line is full: to be parked
								 * until *park_at, not in the line */
} CocoPaceAdmission;

/* flags of coco_pace_admit() */
#define COCO_PACE_MAY_PARK	0x01	/* cocohooks.retry_queue exists */
#define COCO_PACE_FIRST		0x02	/* a first attempt from its source: behind
									 * the hook's deliveries parked for its
									 * pace */

extern CocoPaceAdmission coco_pace_admit(CocoPaced *paced, int64 hook_id,
										 int flags, TimestampTz *park_at);
extern TimestampTz coco_pace_remove_to_park(CocoPaced *paced);
extern bool coco_pace_pop_speedup(int64 *hook_id, TimestampTz *since,
								  double *factor);
extern void coco_pace_release(CocoPaced *paced, CocoPaceOutcome outcome);
extern void coco_pace_remove(CocoPaced *paced);

/* the next waiting one whose hook's pace lets it go now, admitted; or NULL */
extern CocoPaced *coco_pace_pop_ready(void);

/* milliseconds until a waiting one may go, -1 if none waits for time */
extern long coco_pace_next_ms(void);
extern int	coco_pace_waiting(void);
extern int	coco_pace_waiting_unpaced(void);
extern bool coco_pace_hook_backed_up(int64 hook_id, int max_waiting);

#endif							/* COCOHOOKS_HOOK_PACE_H */
