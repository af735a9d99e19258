/*-------------------------------------------------------------------------
 *
 * origin_queue.c
 *	  Per-receiver admission of deliveries in the worker.
 *
 * A receiver (an origin: scheme, host and port) gets at most
 * cocohooks.max_host_connections requests at once, one per connection, or,
 * once it has answered over HTTP/2, cocohooks.max_host_streams, as streams
 * multiplexed over few connections; further deliveries to it wait here, in
 * arrival order, not inside libcurl.  So a hook's timeout counts from when
 * its request is actually sent, and a slow receiver only ever makes its own
 * deliveries wait.  Until its first answer an origin counts as HTTP/1.1,
 * and its latest answer says which it speaks from then on.
 *
 * Origins live for the worker's lifetime; there are as many as distinct
 * receivers of registered hooks.  Worker-local, no locking.
 *
 * Runs in: the worker (the delivery engine).
 *
 * Invariants: an origin's active count is the number of its deliveries
 * that hold a turn (sent or being sent); a delivery waits here only while
 * the origin is at its limit; release hands the turn straight to the next
 * waiter, so a turn is never lost and never counted twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "origin_queue.h"

#define ORIGIN_KEY_LEN 256

struct CocoOrigin
{
	char		key[ORIGIN_KEY_LEN];	/* hash key: "scheme://host:port" */
	int			active;			/* requests in flight */
	bool		multiplexed;	/* its latest answer came over HTTP/2 */
	dlist_head	waiting;		/* deliveries waiting for a turn */
};

static HTAB *origins = NULL;
static int	connection_limit = 1;
static int	stream_limit = 1;
static int	waiting_total = 0;	/* in every origin's waiting list */

void
coco_origin_set_limits(int connections, int streams)
{
	connection_limit = Max(connections, 1);
	stream_limit = Max(streams, 1);
}

static inline int
origin_limit(const CocoOrigin *origin)
{
	return origin->multiplexed ? stream_limit : connection_limit;
}

/*
 * Records which protocol the origin answered with.  When it now allows
 * more requests at once, the caller sends the waiters coco_origin_next_waiter
 * gives.
 */
void
coco_origin_note_protocol(CocoOrigin *origin, bool multiplexed)
{
	origin->multiplexed = multiplexed;
}

/* The origin of a URL: everything before the path, query or fragment. */
CocoOrigin *
coco_origin_for_url(const char *url, int url_len)
{
	char		key[ORIGIN_KEY_LEN] = {0};
	const char *rest = memchr(url, ':', url_len);
	int			len = url_len;
	CocoOrigin *origin;
	bool		found;

	if (rest && rest + 3 <= url + url_len && strncmp(rest, "://", 3) == 0)
	{
		for (const char *p = rest + 3; p < url + url_len; p++)
			if (*p == '/' || *p == '?' || *p == '#')
			{
				len = (int) (p - url);
				break;
			}
	}
	memcpy(key, url, Min(len, ORIGIN_KEY_LEN - 1));
	for (int i = 0; key[i]; i++)
		key[i] = pg_tolower((unsigned char) key[i]);

	if (origins == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = ORIGIN_KEY_LEN;
		ctl.entrysize = sizeof(CocoOrigin);
		ctl.hcxt = TopMemoryContext;
		origins = hash_create("cocohooks origins", 64, &ctl,
							  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	origin = hash_search(origins, key, HASH_ENTER, &found);
	if (!found)
	{
		origin->active = 0;
		origin->multiplexed = false;
		dlist_init(&origin->waiting);
	}
	return origin;
}

/*
 * Takes a turn for a request and returns true, or, when the origin is at
 * its limit, queues waiter and returns false.
 */
bool
coco_origin_admit(CocoOrigin *origin, dlist_node *waiter)
{
	if (origin->active < origin_limit(origin))
	{
		origin->active++;
		return true;
	}
	dlist_push_tail(&origin->waiting, waiter);
	waiting_total++;
	return false;
}

/* Requests waiting for a turn, at every origin. */
int
coco_origin_waiting(void)
{
	return waiting_total;
}

/*
 * Gives back a turn.  Returns the next waiting delivery, which now holds a
 * turn and should be sent, or NULL.
 */
dlist_node *
coco_origin_release(CocoOrigin *origin)
{
	origin->active--;
	return coco_origin_next_waiter(origin);
}

/*
 * The next waiting delivery if the origin has a free turn, which it now
 * holds and should be sent; else NULL.
 */
dlist_node *
coco_origin_next_waiter(CocoOrigin *origin)
{
	if (origin->active < origin_limit(origin) && !dlist_is_empty(&origin->waiting))
	{
		origin->active++;
		waiting_total--;
		return dlist_pop_head_node(&origin->waiting);
	}
	return NULL;
}
