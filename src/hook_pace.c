/*-------------------------------------------------------------------------
 *
 * hook_pace.c
 *	  Each hook's pace in the worker: requests started per second
 *	  (max_per_second), requests in flight (max_concurrent), and the
 *	  concurrency its receiver takes (429 and 503 lower it).
 *
 * The delivery engine asks here before each request of a hook, first
 * attempt or retry, ahead of its receiver's admission (origin_queue.c): a
 * request waiting for its hook's pace holds no turn of a receiver that
 * other hooks share.  One that may not go yet waits in its hook's line, in
 * arrival order; the engine takes those that may go now at each pass
 * (coco_pace_pop_ready) and wakes for the next token (coco_pace_next_ms).
 * The engine puts a delivery here only when it may be sent (the first of
 * its document, a due retry), so a document's order is kept before this
 * line, and a hook's line holds back no other hook.
 *
 * max_per_second is a token bucket: tokens come at that rate, fractions
 * allowed (0.5: one every 2 s), and each request takes one.  The bucket
 * holds a tenth of a second's worth, at least one token: a busy hook's
 * requests are spread evenly (5/s: one every 200 ms, no burst of five),
 * while a late wake-up of the worker of up to that much loses no token at
 * high rates.
 *
 * The window is the number of requests in flight the hook's receiver
 * seems to take, kept by additive increase and multiplicative decrease
 * (AIMD, as TCP does): a 429 or 503 halves it (its requests in flight, if
 * fewer, halved; at least 1), once per round: answers to requests sent
 * before the last decrease lower it no further; each success raises it by
 * 1/window, about one a round trip, up to its ceiling: max_concurrent, or,
 * for a hook without one, cocohooks.max_host_connections, which bounds its
 * receiver's requests anyway.  A hook without max_concurrent whose window
 * is at the ceiling is not held at all: its requests wait, if need be, for
 * their receiver's turn, as before.  The retried request's time is the
 * retry policy's (Retry-After wins there); the window only spaces the
 * requests that follow.
 *
 * The limits are the hook's as they are now (hook_settings.c reads them),
 * not those of the settings version an event names; a change applies to
 * waiting requests too.  A hook gone from the catalog (unregistered) keeps
 * the pace it had for its last deliveries, if any still wait or are in
 * flight.
 *
 * A request given up unsent (its hook disabled, its WAL record past
 * cocohooks.max_wal_retention) gives its token back: a line of them
 * empties at once rather than at the hook's pace.
 *
 * A hook's line has a bound of its own (line_limit): PACE_LINE_MS of its
 * max_per_second, or for a pace of max_concurrent only PACE_LINE_ROUNDS
 * times its window, at least PACE_LINE_MIN, and at most a
 * COCO_PACE_LINE_SHARE-th of the bound on all lines, so that a hook paced
 * slower than its events come fills no more than its share.  A request
 * that would wait past its line's bound, or past the bound on all lines,
 * is parked instead (COCO_PACE_PARK: the engine writes it to
 * cocohooks.retry_queue, parked_retries.c) until about its turn: each
 * hook keeps the turn of its last parked request (parked_until, a virtual
 * clock advanced by the hook's time per request: 1 / max_per_second, or
 * for max_concurrent alone its measured time per request over its window),
 * and the next one parked comes after it, due PACE_PARK_LEAD_MS ahead of
 * its turn (the parked rows are looked for about once a second) and never
 * sooner than PACE_PARK_MIN_MS from now.  So the rows of a long overflow
 * come due at the hook's pace, a few at a time, rather than all at once,
 * and one taken back while its line is still full is parked again at the
 * end of the clock: taken and parked again no faster than the hook's pace.
 * While a hook's clock is ahead of now, a first attempt (COCO_PACE_FIRST)
 * is parked behind the parked ones rather than passing them into the line.
 * A change of pace that makes the hook faster pulls its clock in, and
 * reports it (coco_pace_pop_speedup) so that the engine pulls its parked
 * rows in alike.  Without the table (a catalog older than 0.3.0) nothing
 * is parked, and the lines grow to the bound on all lines.  Nor is a
 * request of a hook without a pace of its own (no max_per_second or
 * max_concurrent), held back only by a window its receiver's 429s or 503s
 * lowered, which its successes open again: its retries keep their events'
 * WAL, and are given up past cocohooks.max_wal_retention, as before, and
 * past the bound on all lines the engine takes no new events
 * (coco_pace_waiting_unpaced).
 *
 * Runs in: the worker (the delivery engine), and nowhere else.
 *
 * Invariants: a hook's in_flight is the number of its admitted, not yet
 * released requests; nwaiting is the length of its line, and the total the
 * sum over hooks; a hook is in the busy list exactly while its line is not
 * empty, and in the speed-up list exactly while speedup_pending; with
 * COCO_PACE_MAY_PARK a line grows past neither its bound nor the bound on
 * all lines; an entry is only forgotten with nothing admitted or waiting
 * (no CocoPaced points to it) and nothing to remember: a full window, no
 * max_per_second whose spent tokens must be kept, no clock of parked
 * requests ahead of now and no speed-up to report; no function here raises
 * an error but out of memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "hook_pace.h"
#include "hook_settings.h"
#include "settings.h"

/* the bucket holds this much time's worth of tokens, at least one */
#define BURST_MS		100.0

/* tokens counted with doubles: this much short of one still goes */
#define TOKEN_EPSILON	1e-9

/*
 * A line's own bound: this much time of max_per_second, or this many
 * windows of a pace of max_concurrent alone, at least PACE_LINE_MIN (and
 * at most its share of the bound on all lines, COCO_PACE_LINE_SHARE).
 */
#define PACE_LINE_MS		5000.0
#define PACE_LINE_ROUNDS	4
#define PACE_LINE_MIN		16

/*
 * A parked request comes due this much ahead of its turn, for the parked
 * rows are looked for about once a second, and never sooner than
 * PACE_PARK_MIN_MS from now: one taken back into a full line goes back to
 * the table no more often than that.
 */
#define PACE_PARK_LEAD_MS	1000
#define PACE_PARK_MIN_MS	1000

/* a request's time, for max_concurrent alone, before any was measured */
#define PACE_DEFAULT_REQUEST_MS 1000.0

/* how much of a new measure of a request's time moves the average */
#define PACE_REQUEST_WEIGHT 0.2

typedef struct HookPace
{
	int64		hook_id;		/* hash key */
	double		max_per_second; /* as last read, 0: none */
	int			max_concurrent; /* as last read, 0: none */
	double		tokens;			/* requests it may start now, max_per_second */
	TimestampTz refilled_at;	/* tokens counted up to then */
	int			in_flight;		/* admitted, not yet released */
	double		window;			/* requests in flight its receiver takes */
	int			ceiling;		/* the window's, as last read */
	uint32		epoch;			/* bumped by each decrease */
	dlist_head	waiting;		/* its line */
	int			nwaiting;
	dlist_node	busy_node;		/* in busy while its line is not empty */
	double		request_ms;		/* average time of a request, 0: none yet */
	TimestampTz parked_until;	/* the turn of its last parked request, 0:
								 * none */
	bool		speedup_pending;	/* in speedups: parked rows to pull in */
	TimestampTz speedup_since;	/* from when */
	double		speedup_factor; /* their time from then on, times this */
	dlist_node	speedup_node;
} HookPace;

static HTAB *paces = NULL;
static dlist_head busy = DLIST_STATIC_INIT(busy);
static dlist_head speedups = DLIST_STATIC_INIT(speedups);
static int	total_waiting = 0;

void
coco_pace_init(MemoryContext cxt)
{
	HASHCTL		ctl = {0};

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(HookPace);
	ctl.hcxt = cxt;
	paces = hash_create("cocohooks hook paces", 64, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

static double
bucket_size(double per_second)
{
	return Max(1.0, per_second * BURST_MS / 1000.0);
}

/*
 * The hook's time per request at its pace, in microseconds, 0 if it is not
 * held: 1 / max_per_second, or, held by its window, its average request's
 * time over the window if that is longer (the default before any measure,
 * only without max_per_second).
 */
static double
request_interval_us(const HookPace *h)
{
	double		us = 0;

	if (h->max_per_second > 0)
		us = (double) USECS_PER_SEC / h->max_per_second;
	if ((h->max_concurrent > 0 || h->window < h->ceiling) &&
		(h->request_ms > 0 || us == 0))
	{
		double		ms = h->request_ms > 0 ? h->request_ms : PACE_DEFAULT_REQUEST_MS;

		us = Max(us, ms * 1000.0 / Max(h->window, 1.0));
	}
	return us;
}

/* Whether the hook has a pace of its own, not only a window (see the banner). */
static bool
has_own_pace(const HookPace *h)
{
	return h->max_per_second > 0 || h->max_concurrent > 0;
}

/* The bound of the hook's own line (see the banner). */
static int
line_limit(const HookPace *h)
{
	int			share = Max(cocohooks_max_concurrent_deliveries * COCO_PACE_BACKLOG_FACTOR /
							COCO_PACE_LINE_SHARE, 1);
	double		n;

	if (h->max_per_second > 0)
		n = ceil(h->max_per_second * PACE_LINE_MS / 1000.0);
	else
		n = ceil(Max(h->window, 1.0)) * PACE_LINE_ROUNDS;
	n = Max(n, PACE_LINE_MIN);
	return (int) Min(n, (double) share);
}

/*
 * The hook's limits changed while requests of it are parked ahead of now:
 * if it is faster now, its clock is pulled in by the ratio of its times
 * per request, and the engine is told to pull its parked rows in alike.
 */
static void
note_change(HookPace *h, double old_us, TimestampTz *now)
{
	double		new_us = request_interval_us(h);
	double		factor;

	if (*now == 0)
		*now = GetCurrentTimestamp();
	if (h->parked_until <= *now)
	{
		h->parked_until = 0;
		return;
	}
	/* slower: the rows due too early are parked again, at the new pace */
	if (old_us <= 0 || new_us >= old_us)
		return;
	factor = new_us / old_us;
	h->parked_until = *now + (TimestampTz) ((h->parked_until - *now) * factor);
	if (h->speedup_pending)
		h->speedup_factor *= factor;
	else
	{
		h->speedup_pending = true;
		h->speedup_since = *now;
		h->speedup_factor = factor;
		dlist_push_tail(&speedups, &h->speedup_node);
	}
}

/*
 * Takes in the hook's limits as they are now, and counts the tokens that
 * came since the last look.  *now is the time, read here if 0: a hook
 * without max_per_second needs no clock.
 */
static void
refresh(HookPace *h, TimestampTz *now)
{
	double		per_second;
	int			concurrent;
	int			ceiling;
	double		old_us = 0;
	bool		changed;

	if (!coco_hook_pace_limits(h->hook_id, &per_second, &concurrent))
	{
		/* gone from the catalog: what it had */
		per_second = h->max_per_second;
		concurrent = h->max_concurrent;
	}
	changed = Max(per_second, 0) != h->max_per_second ||
		concurrent != h->max_concurrent;
	if (changed && h->parked_until != 0)
		old_us = request_interval_us(h);
	ceiling = concurrent > 0 ? concurrent : Max(cocohooks_max_host_connections, 1);
	if (ceiling != h->ceiling)
	{
		/* a full window stays full; a lowered one keeps what it learnt */
		h->window = h->window >= h->ceiling ? ceiling : Min(h->window, ceiling);
		h->ceiling = ceiling;
	}
	h->max_concurrent = concurrent;

	if (per_second <= 0)
		h->max_per_second = 0;
	else
	{
		if (*now == 0)
			*now = GetCurrentTimestamp();
		if (h->max_per_second <= 0)
		{
			/* newly paced: a full bucket */
			h->tokens = bucket_size(per_second);
			h->refilled_at = *now;
		}
		else
		{
			long		ms = TimestampDifferenceMilliseconds(h->refilled_at, *now);

			/* advanced by what was counted: rounding loses no time */
			h->tokens += (double) ms * per_second / 1000.0;
			h->refilled_at = TimestampTzPlusMilliseconds(h->refilled_at, ms);
			if (h->tokens >= bucket_size(per_second))
			{
				h->tokens = bucket_size(per_second);
				h->refilled_at = *now;
			}
		}
		h->max_per_second = per_second;
	}
	if (changed && h->parked_until != 0)
		note_change(h, old_us, now);
}

/* Whether another request of the hook may start now (refreshed). */
static bool
may_go(const HookPace *h)
{
	if (h->max_per_second > 0 && h->tokens < 1.0 - TOKEN_EPSILON)
		return false;
	/* not held: no max_concurrent, and its receiver never pushed back */
	if (h->max_concurrent == 0 && h->window >= h->ceiling)
		return true;
	return h->in_flight < Max((int) h->window, 1);
}

static void
take_place(HookPace *h, CocoPaced *paced)
{
	if (h->max_per_second > 0)
		h->tokens -= 1.0;
	h->in_flight++;
	paced->hook = h;
	paced->epoch = h->epoch;
	paced->admitted = true;
	paced->admitted_at = GetCurrentTimestamp();
}

/* Forgets a hook with nothing in flight, waiting or to remember. */
static void
forget_if_idle(HookPace *h)
{
	if (h->in_flight == 0 && h->nwaiting == 0 && h->window >= h->ceiling &&
		h->max_per_second <= 0 && !h->speedup_pending &&
		(h->parked_until == 0 || h->parked_until <= GetCurrentTimestamp()))
		hash_search(paces, &h->hook_id, HASH_REMOVE, NULL);
}

/*
 * When a request of h parked now should come due (see the banner); its
 * turn becomes the hook's last.  Counts the line as it is, so a request
 * out of it must have left it.
 */
static TimestampTz
park_time(HookPace *h, TimestampTz now)
{
	double		us = request_interval_us(h);
	TimestampTz turn = now + (TimestampTz) (h->nwaiting * us);
	TimestampTz due;

	if (h->parked_until > turn)
		turn = h->parked_until;
	turn += (TimestampTz) us;
	h->parked_until = turn;
	due = TimestampTzPlusMilliseconds(turn, -PACE_PARK_LEAD_MS);
	return Max(due, TimestampTzPlusMilliseconds(now, PACE_PARK_MIN_MS));
}

/*
 * Whether a request of a hook may start now (ADMITTED), waits in its
 * hook's line (WAITING), or, with COCO_PACE_MAY_PARK, is to be parked until
 * *park_at (PARK): the line is at its bound or all lines at theirs, or,
 * with COCO_PACE_FIRST, requests of its hook are parked ahead of it.
 */
CocoPaceAdmission
coco_pace_admit(CocoPaced *paced, int64 hook_id, int flags,
				TimestampTz *park_at)
{
	bool		found;
	HookPace   *h = hash_search(paces, &hook_id, HASH_ENTER, &found);
	TimestampTz now = 0;
	bool		goes;

	Assert(!paced->waiting && !paced->admitted);
	if (!found)
	{
		h->max_per_second = 0;
		h->max_concurrent = 0;
		h->tokens = 0;
		h->refilled_at = 0;
		h->in_flight = 0;
		h->ceiling = Max(cocohooks_max_host_connections, 1);
		h->window = h->ceiling;
		h->epoch = 0;
		dlist_init(&h->waiting);
		h->nwaiting = 0;
		h->request_ms = 0;
		h->parked_until = 0;
		h->speedup_pending = false;
	}
	refresh(h, &now);
	/* behind the hook's waiting ones, if any */
	goes = h->nwaiting == 0 && may_go(h);
	if ((flags & COCO_PACE_MAY_PARK) && has_own_pace(h) && request_interval_us(h) > 0)
	{
		bool		behind_parked = false;

		/* even if it could go: the parked ones' turns are counted on */
		if ((flags & COCO_PACE_FIRST) && h->parked_until != 0)
		{
			if (now == 0)
				now = GetCurrentTimestamp();
			behind_parked = h->parked_until > now;
		}
		if (behind_parked ||
			(!goes && (h->nwaiting >= line_limit(h) ||
					   total_waiting >= cocohooks_max_concurrent_deliveries * COCO_PACE_BACKLOG_FACTOR)))
		{
			if (now == 0)
				now = GetCurrentTimestamp();
			*park_at = park_time(h, now);
			return COCO_PACE_PARK;
		}
	}
	if (goes)
	{
		take_place(h, paced);
		return COCO_PACE_ADMITTED;
	}
	if (h->nwaiting == 0)
		dlist_push_tail(&busy, &h->busy_node);
	dlist_push_tail(&h->waiting, &paced->node);
	h->nwaiting++;
	total_waiting++;
	paced->hook = h;
	paced->waiting = true;
	return COCO_PACE_WAITING;
}

static void
leave_line(HookPace *h, CocoPaced *paced)
{
	dlist_delete(&paced->node);
	paced->waiting = false;
	h->nwaiting--;
	total_waiting--;
	if (h->nwaiting == 0)
		dlist_delete(&h->busy_node);
}

/*
 * An admitted request is done (answered, failed, or given up without
 * being sent): its place goes back, and its answer moves the window.
 */
void
coco_pace_release(CocoPaced *paced, CocoPaceOutcome outcome)
{
	HookPace   *h = (HookPace *) paced->hook;

	Assert(paced->admitted);
	paced->admitted = false;
	paced->hook = NULL;
	if (outcome != COCO_PACE_NOT_SENT)
	{
		long		ms = TimestampDifferenceMilliseconds(paced->admitted_at,
														 GetCurrentTimestamp());

		h->request_ms = h->request_ms > 0 ?
			(1.0 - PACE_REQUEST_WEIGHT) * h->request_ms + PACE_REQUEST_WEIGHT * ms :
			Max(ms, 1);
	}
	if (outcome == COCO_PACE_SLOW_DOWN && paced->epoch == h->epoch)
	{
		/* once per round: later answers to earlier requests change nothing */
		h->window = Max(Min(h->window, (double) h->in_flight) / 2.0, 1.0);
		h->epoch++;
		ereport(DEBUG1,
				(errmsg_internal("cocohooks hook %lld: receiver pushed back, %.1f requests in flight from now on",
								 (long long) h->hook_id, h->window)));
	}
	else if (outcome == COCO_PACE_SUCCESS && h->window < h->ceiling)
		h->window = Min(h->window + 1.0 / h->window, (double) h->ceiling);
	else if (outcome == COCO_PACE_NOT_SENT && h->max_per_second > 0)
		h->tokens = Min(h->tokens + 1.0, bucket_size(h->max_per_second));
	h->in_flight--;
	forget_if_idle(h);
}

/* Takes a waiting request out of its hook's line (it goes elsewhere). */
void
coco_pace_remove(CocoPaced *paced)
{
	HookPace   *h = (HookPace *) paced->hook;

	Assert(paced->waiting);
	leave_line(h, paced);
	paced->hook = NULL;
	forget_if_idle(h);
}

/*
 * Takes a waiting request out of its hook's line to be parked; returns
 * when it should come due, as coco_pace_admit() would have.
 */
TimestampTz
coco_pace_remove_to_park(CocoPaced *paced)
{
	HookPace   *h = (HookPace *) paced->hook;
	TimestampTz at;

	Assert(paced->waiting);
	leave_line(h, paced);
	paced->hook = NULL;
	at = park_time(h, GetCurrentTimestamp());
	forget_if_idle(h);
	return at;
}

/*
 * A hook whose pace became faster while requests of it were parked: the
 * time of its rows parked for the pace, from *since on, is to be
 * multiplied by *factor.  False if none is left to report.
 */
bool
coco_pace_pop_speedup(int64 *hook_id, TimestampTz *since, double *factor)
{
	HookPace   *h;

	if (dlist_is_empty(&speedups))
		return false;
	h = dlist_container(HookPace, speedup_node, dlist_pop_head_node(&speedups));
	h->speedup_pending = false;
	*hook_id = h->hook_id;
	*since = h->speedup_since;
	*factor = h->speedup_factor;
	forget_if_idle(h);
	return true;
}

CocoPaced *
coco_pace_pop_ready(void)
{
	TimestampTz now = 0;
	dlist_iter	iter;

	if (total_waiting == 0)
		return NULL;
	dlist_foreach(iter, &busy)
	{
		HookPace   *h = dlist_container(HookPace, busy_node, iter.cur);
		CocoPaced  *paced;

		refresh(h, &now);
		if (!may_go(h))
			continue;
		paced = dlist_head_element(CocoPaced, node, &h->waiting);
		leave_line(h, paced);
		take_place(h, paced);
		return paced;
	}
	return NULL;
}

/*
 * Milliseconds until the next token of a hook whose line waits for one:
 * 0 if one may go now, -1 if none waits for time (only for answers, which
 * wake the worker anyway).
 */
long
coco_pace_next_ms(void)
{
	TimestampTz now = 0;
	dlist_iter	iter;
	long		next = -1;

	if (total_waiting == 0)
		return -1;
	dlist_foreach(iter, &busy)
	{
		HookPace   *h = dlist_container(HookPace, busy_node, iter.cur);
		long		ms;

		refresh(h, &now);
		if (may_go(h))
			return 0;
		if (h->max_per_second <= 0 || h->tokens >= 1.0 - TOKEN_EPSILON)
			continue;			/* held by the window: an answer frees it */
		ms = (long) ceil((1.0 - h->tokens) * 1000.0 / h->max_per_second);
		if (next < 0 || ms < next)
			next = ms;
	}
	return next;
}

/* Requests waiting for their hook's pace. */
int
coco_pace_waiting(void)
{
	return total_waiting;
}

/*
 * Requests waiting in one hook's line, and whether requests of its are
 * parked for its pace ahead of new ones: a source that can hold its events
 * back (backfill_source.c) hands more only while neither, so it never
 * fills the line or makes the engine park them.
 */
bool
coco_pace_hook_backed_up(int64 hook_id, int max_waiting)
{
	HookPace   *h;

	if (paces == NULL ||
		(h = hash_search(paces, &hook_id, HASH_FIND, NULL)) == NULL)
		return false;
	/* half its own line's bound at most: the engine parks past the bound */
	if (has_own_pace(h))
		max_waiting = Min(max_waiting, Max(line_limit(h) / 2, 1));
	return h->nwaiting >= max_waiting ||
		(h->parked_until != 0 && h->parked_until > GetCurrentTimestamp());
}

/* Requests waiting in the lines of hooks without a pace of their own. */
int
coco_pace_waiting_unpaced(void)
{
	dlist_iter	iter;
	int			n = 0;

	dlist_foreach(iter, &busy)
	{
		HookPace   *h = dlist_container(HookPace, busy_node, iter.cur);

		if (!has_own_pace(h))
			n += h->nwaiting;
	}
	return n;
}
