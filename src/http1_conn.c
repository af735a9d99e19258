/*-------------------------------------------------------------------------
 *
 * http1_conn.c
 *	  Kept-alive HTTP/1.1 connections the worker writes and reads itself.
 *
 * libcurl opens the connection (name resolution, the network guard, TLS,
 * the connect timeout: http_client.c); from then on it is ours.  A POST on
 * it is one sendmsg() of its head and body, and its answer usually one
 * recv(): no option setting, no header scanning, no liveness poll, no
 * change of what epoll watches.  Over TLS the session stays libcurl's:
 * the connection writes and reads through curl_easy_send() and
 * curl_easy_recv() on the handle that made it, head and body in one
 * buffer (one record).  An idle connection
 * stays watched for input, so one its receiver closed is seen and closed
 * before it is used again; one that still dies under a request before any
 * answer came sends that request again on a new connection, once, as
 * libcurl does.
 *
 * Connections are kept per origin ("host:port"), the most recently used
 * first, at most max_conns in all, an idle one for at most 118 s (libcurl's
 * default), and each is checked against cocohooks.allowed_networks before
 * it is reused.  A request has a deadline (its hook's timeout, from the
 * moment it was posted); the pool wakes the worker for the earliest.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- a connection is in exactly one of: its origin's idle list and the
 *	  idle LRU, the busy list, the closed list, or none while being handed
 *	  over;
 *	- a closed connection is freed by coco_h1_reap() only, after the
 *	  events of the round were handled: an event may still name it;
 *	- the done and reconnect callbacks are called last, from event and
 *	  timeout handling, never from coco_h1_send(): the connection may be
 *	  reused by the callback itself;
 *	- memory: at most max_conns idle connections of about 17 kB and a
 *	  request head's buffer each (a TLS one also holds the body while it
 *	  is sent; one over 64 kB is freed when the connection goes idle),
 *	  and as many busy ones as requests in flight.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <unistd.h>

#include "lib/ilist.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "conn_io.h"
#include "http1_conn.h"
#include "network_guard.h"

#define READ_BUFFER		16384	/* the longest line of an answer's head */
#define IDLE_MAX_USEC	(118 * USECS_PER_SEC)
#define HEAD_KEEP		65536	/* a larger head buffer is not kept while idle */
#define EVENT_TAG		UINT64CONST(1)
#define EVENT_TAG_MASK	UINT64CONST(3)	/* http2_conn.c's are 3 */

typedef enum ConnPlace
{
	PLACE_NONE,
	PLACE_IDLE,
	PLACE_BUSY,
	PLACE_CLOSED
} ConnPlace;

struct CocoH1Conn
{
	int			fd;
	CURL	   *easy;			/* TLS: libcurl's handle that holds the session */
	ConnPlace	place;
	uint32		watching;		/* the epoll events registered */
	bool		sending;		/* head and body not all written */
	bool		reused;			/* it served a request before this one */
	int			served;
	int			family;			/* the receiver's address */
	uint8		addr[16];
	char		origin[COCO_H1_ORIGIN_LEN];
	dlist_node	origin_node;	/* in its origin's idle list */
	struct OriginIdle *entry;	/* its origin's entry */
	dlist_node	node;			/* in the idle LRU, busy or closed list */
	TimestampTz idle_since;
	CocoH1Request *req;
	StringInfoData head;
	size_t		sent;			/* of the head, then the body */
	uint64		answer_bytes;	/* received for this request */
	CocoH1Response resp;
	char		error[CURL_ERROR_SIZE];	/* why the last read or write failed */
	int			buf_len;
	char		buf[READ_BUFFER];
};

typedef struct OriginIdle
{
	char		origin[COCO_H1_ORIGIN_LEN];
	dlist_head	idle;			/* the most recently used first */
	int			nconns;			/* open connections to it; none: no entry */
} OriginIdle;

struct CocoH1Pool
{
	int			epfd;
	HTAB	   *origins;		/* OriginIdle by origin */
	dlist_head	idle_lru;		/* every idle connection, the newest first */
	dlist_head	busy;
	dlist_head	closed;
	int			nconns;
	int			max_conns;
	TimestampTz next_deadline;	/* 0: no request */
	CocoH1DoneFn done;
	CocoH1ReconnectFn reconnect;
	CocoH1ReleaseFn release;
	void	   *owner;
};

CocoH1Pool *
coco_h1_pool_create(int epfd, CocoH1DoneFn done, CocoH1ReconnectFn reconnect,
					CocoH1ReleaseFn release, void *owner)
{
	CocoH1Pool *pool = MemoryContextAllocZero(TopMemoryContext, sizeof(CocoH1Pool));
	HASHCTL		ctl = {0};

	ctl.keysize = COCO_H1_ORIGIN_LEN;
	ctl.entrysize = sizeof(OriginIdle);
	ctl.hcxt = TopMemoryContext;
	pool->origins = hash_create("cocohooks HTTP/1.1 origins", 64, &ctl,
								HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	pool->epfd = epfd;
	dlist_init(&pool->idle_lru);
	dlist_init(&pool->busy);
	dlist_init(&pool->closed);
	pool->max_conns = 256;
	pool->done = done;
	pool->reconnect = reconnect;
	pool->release = release;
	pool->owner = owner;
	return pool;
}

/* At most this many connections are kept (more may be busy at a time). */
void
coco_h1_set_max_conns(CocoH1Pool *pool, int max_conns)
{
	pool->max_conns = max_conns;
}

static void
watch(CocoH1Pool *pool, CocoH1Conn *conn, uint32 events)
{
	coco_conn_watch(pool->epfd, conn->fd, (uint64) (uintptr_t) conn | EVENT_TAG,
					&conn->watching, events);
}

/* Takes conn out of the list it is in. */
static void
unlist(CocoH1Pool *pool, CocoH1Conn *conn)
{
	if (conn->place == PLACE_IDLE)
	{
		dlist_delete(&conn->origin_node);
		dlist_delete(&conn->node);
	}
	else if (conn->place == PLACE_BUSY)
		dlist_delete(&conn->node);
	conn->place = PLACE_NONE;
}

static void
close_conn(CocoH1Pool *pool, CocoH1Conn *conn)
{
	if (conn->place == PLACE_CLOSED)
		return;
	unlist(pool, conn);
	if (--conn->entry->nconns == 0)
		(void) hash_search(pool->origins, conn->origin, HASH_REMOVE, NULL);
	conn->entry = NULL;
	(void) epoll_ctl(pool->epfd, EPOLL_CTL_DEL, conn->fd, NULL);
	if (conn->easy)
		pool->release(pool->owner, conn->easy);	/* libcurl closes it */
	else
		close(conn->fd);
	conn->fd = -1;
	conn->easy = NULL;
	conn->req = NULL;
	conn->place = PLACE_CLOSED;
	dlist_push_head(&pool->closed, &conn->node);
	pool->nconns--;
}

/* Frees the connections closed since the last call. */
void
coco_h1_reap(CocoH1Pool *pool)
{
	dlist_mutable_iter iter;

	dlist_foreach_modify(iter, &pool->closed)
	{
		CocoH1Conn *conn = dlist_container(CocoH1Conn, node, iter.cur);

		dlist_delete(iter.cur);
		if (conn->head.data)
			pfree(conn->head.data);
		pfree(conn);
	}
}

static void
make_idle(CocoH1Pool *pool, CocoH1Conn *conn, TimestampTz now)
{
	unlist(pool, conn);
	conn->req = NULL;
	if (pool->nconns > pool->max_conns)
	{
		close_conn(pool, conn);
		return;
	}
	watch(pool, conn, EPOLLIN);
	if (conn->head.maxlen > HEAD_KEEP)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pfree(conn->head.data);
		initStringInfo(&conn->head);
		MemoryContextSwitchTo(old);
	}
	dlist_push_head(&conn->entry->idle, &conn->origin_node);
	dlist_push_head(&pool->idle_lru, &conn->node);
	conn->idle_since = now;
	conn->place = PLACE_IDLE;
}

/*
 * An idle connection to origin that may be used now, taken out of the
 * pool, or NULL.  One idle too long, or to an address the network guard
 * no longer allows, is closed (a new connection is then refused by the
 * guard as it is made).
 */
CocoH1Conn *
coco_h1_idle_conn(CocoH1Pool *pool, const char *origin, TimestampTz now)
{
	OriginIdle *entry = hash_search(pool->origins, origin, HASH_FIND, NULL);

	while (entry != NULL && !dlist_is_empty(&entry->idle))
	{
		CocoH1Conn *conn = dlist_head_element(CocoH1Conn, origin_node, &entry->idle);
		const char *why;

		unlist(pool, conn);
		if (conn->entry->nconns == 1)
			entry = NULL;		/* closing it below would remove the entry */
		if (now - conn->idle_since > IDLE_MAX_USEC ||
			!coco_address_allowed(conn->family, conn->addr, &why))
		{
			close_conn(pool, conn);
			continue;
		}
		return conn;
	}
	return NULL;
}

/*
 * Takes over fd, a connected socket to origin, as a connection of the
 * pool; with TLS, easy is the libcurl handle that holds its session
 * (connected with CURLOPT_CONNECT_ONLY, still in its multi handle), given
 * back through the release callback when the connection is closed.
 */
CocoH1Conn *
coco_h1_adopt(CocoH1Pool *pool, int fd, CURL *easy, const char *origin)
{
	CocoH1Conn *conn = MemoryContextAllocZero(TopMemoryContext, sizeof(CocoH1Conn));
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	initStringInfo(&conn->head);
	MemoryContextSwitchTo(old);
	conn->fd = fd;
	conn->easy = easy;
	conn->place = PLACE_NONE;
	strlcpy(conn->origin, origin, sizeof(conn->origin));
	{
		bool		found;

		conn->entry = hash_search(pool->origins, origin, HASH_ENTER, &found);
		if (!found)
		{
			dlist_init(&conn->entry->idle);
			conn->entry->nconns = 0;
		}
		conn->entry->nconns++;
	}
	conn->family = coco_conn_peer(fd, conn->addr);
	pool->nconns++;
	watch(pool, conn, EPOLLIN);
	return conn;
}

/*
 * Writes what the connection takes of the head and body (with TLS, the
 * body follows the head in one buffer: one record).  False on failure,
 * with conn->error set.
 */
static bool
send_more(CocoH1Pool *pool, CocoH1Conn *conn)
{
	CocoH1Request *req = conn->req;
	size_t		head_len = conn->head.len;
	size_t		body_len = conn->easy ? 0 : req->body_len;
	size_t		total = head_len + body_len;

	while (conn->sent < total)
	{
		struct iovec iov[2];
		int			iovcnt;
		ssize_t		n;

		if (conn->sent < head_len)
		{
			iov[0].iov_base = conn->head.data + conn->sent;
			iov[0].iov_len = head_len - conn->sent;
			iov[1].iov_base = (void *) req->body;
			iov[1].iov_len = body_len;
			iovcnt = body_len > 0 ? 2 : 1;
		}
		else
		{
			iov[0].iov_base = (void *) (req->body + (conn->sent - head_len));
			iov[0].iov_len = total - conn->sent;
			iovcnt = 1;
		}
		n = coco_conn_write(conn->fd, conn->easy, iov, iovcnt, conn->error);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return false;
		}
		conn->sent += n;
	}
	conn->sending = conn->sent < total;
	/* the answer may come before the body has gone (an early answer) */
	watch(pool, conn, conn->sending ? EPOLLIN | EPOLLOUT : EPOLLIN);
	return true;
}

/*
 * Sends req on conn (from coco_h1_idle_conn or coco_h1_adopt).  A failure
 * is reported later, from coco_h1_event: the socket is then watched for
 * output, which an error makes ready at once.
 */
void
coco_h1_send(CocoH1Pool *pool, CocoH1Conn *conn, CocoH1Request *req)
{
	Assert(conn->place == PLACE_NONE);
	conn->req = req;
	conn->reused = conn->served > 0;
	conn->served++;
	conn->sent = 0;
	conn->answer_bytes = 0;
	conn->buf_len = 0;
	coco_h1_request_head(&req->url, req->headers, req->body_len, &conn->head);
	if (conn->easy)
		appendBinaryStringInfo(&conn->head, req->body, req->body_len);
	coco_h1_response_start(&conn->resp, req->excerpt);
	dlist_push_tail(&pool->busy, &conn->node);
	conn->place = PLACE_BUSY;
	if (pool->next_deadline == 0 || req->deadline < pool->next_deadline)
		pool->next_deadline = req->deadline;
	if (!send_more(pool, conn))
	{
		conn->sending = true;
		watch(pool, conn, EPOLLIN | EPOLLOUT);
	}
}

static void
fill_result(CocoH1Request *req, CocoHttpResult *result, TimestampTz now)
{
	memset(result, 0, sizeof(*result));
	result->duration_ms = (now - req->started) / 1000.0;
	result->response = req->excerpt;
}

/* The answer is complete: the connection goes back to the pool if it can. */
static void
finish(CocoH1Pool *pool, CocoH1Conn *conn, TimestampTz now)
{
	CocoH1Request *req = conn->req;
	CocoH1Response *resp = &conn->resp;
	CocoHttpResult result;

	fill_result(req, &result, now);
	result.status = resp->status;
	result.retry_after_s = resp->retry_after_s;
	result.response_len = (int) Min(resp->body_read, (size_t) COCO_RESPONSE_EXCERPT);
	/* what the receiver sent past its answer, or before reading all of ours */
	if (resp->keep_alive && !conn->sending && conn->buf_len == 0)
		make_idle(pool, conn, now);
	else
		close_conn(pool, conn);
	pool->done(pool->owner, req, &result);
}

/*
 * The request failed on conn.  A kept-alive connection that died before
 * any byte of the answer came is one the receiver closed as we reused it:
 * the request goes again on a new connection, once.
 */
static void
fail(CocoH1Pool *pool, CocoH1Conn *conn, const char *why, bool timed_out,
	 TimestampTz now)
{
	CocoH1Request *req = conn->req;
	CocoHttpResult result;

	if (conn->reused && conn->answer_bytes == 0 && !req->retried && !timed_out)
	{
		req->retried = true;
		close_conn(pool, conn);
		pool->reconnect(pool->owner, req);
		return;
	}
	fill_result(req, &result, now);
	strlcpy(req->errbuf, why, CURL_ERROR_SIZE);
	result.error = req->errbuf;
	result.timed_out = timed_out;
	close_conn(pool, conn);
	pool->done(pool->owner, req, &result);
}

/* Reads what has come of the answer; finishes the request when it is whole. */
static void
read_answer(CocoH1Pool *pool, CocoH1Conn *conn, TimestampTz now)
{
	CocoH1Response *resp = &conn->resp;

	for (;;)
	{
		ssize_t		n;
		size_t		used;

		if (conn->buf_len == READ_BUFFER)
		{
			fail(pool, conn, "the answer has a header line longer than 16384 bytes",
				 false, now);
			return;
		}
		n = coco_conn_read(conn->fd, conn->easy, conn->buf + conn->buf_len,
						   READ_BUFFER - conn->buf_len, conn->error);
		if (n == 0)
		{
			if (conn->answer_bytes == 0)
			{
				fail(pool, conn, "Empty reply from server", false, now);
				return;
			}
			coco_h1_response_eof(resp);
			if (resp->state == H1_COMPLETE)
				finish(pool, conn, now);
			else
				fail(pool, conn, resp->error, false, now);
			return;
		}
		if (n < 0)
		{
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fail(pool, conn, conn->error, false, now);
			return;
		}
		conn->answer_bytes += n;
		conn->buf_len += n;
		used = coco_h1_response_feed(resp, conn->buf, conn->buf_len);
		if (used > 0)
		{
			conn->buf_len -= used;
			memmove(conn->buf, conn->buf + used, conn->buf_len);
		}
		if (resp->state == H1_COMPLETE)
		{
			finish(pool, conn, now);
			return;
		}
		if (resp->state == H1_FAILED)
		{
			fail(pool, conn, resp->error, false, now);
			return;
		}
	}
}

bool
coco_h1_owns_event(uint64 data)
{
	return (data & EVENT_TAG_MASK) == EVENT_TAG;
}

/* Handles what epoll reported for a connection of the pool. */
void
coco_h1_event(CocoH1Pool *pool, uint64 data, uint32 events, TimestampTz now)
{
	CocoH1Conn *conn = (CocoH1Conn *) (uintptr_t) (data & ~EVENT_TAG_MASK);

	if (conn->place == PLACE_CLOSED)
		return;
	if (conn->req == NULL)
	{
		char		byte;

		/*
		 * Idle: its receiver closed it, or sent what nobody asked for; over
		 * TLS it may only have been a session ticket, read by libcurl.
		 */
		if (conn->easy && coco_conn_read(conn->fd, conn->easy, &byte, 1, conn->error) < 0 &&
			errno == EAGAIN)
			return;
		close_conn(pool, conn);
		return;
	}
	if (conn->sending && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
		!send_more(pool, conn))
	{
		/* an answer that came before the write failed still counts */
		if (events & EPOLLIN)
			read_answer(pool, conn, now);
		else
			fail(pool, conn, conn->error, false, now);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		read_answer(pool, conn, now);
}

/* Milliseconds until the earliest request's deadline; -1 when none. */
long
coco_h1_timeout_ms(CocoH1Pool *pool, TimestampTz now)
{
	if (pool->next_deadline == 0)
		return -1;
	if (pool->next_deadline <= now)
		return 0;
	return (long) ((pool->next_deadline - now + 999) / 1000);
}

/*
 * Fails the requests whose deadline has passed, and closes connections
 * idle for too long.
 */
void
coco_h1_expire(CocoH1Pool *pool, TimestampTz now)
{
	if (pool->next_deadline != 0 && pool->next_deadline <= now)
	{
		dlist_head	expired;
		dlist_mutable_iter iter;

		dlist_init(&expired);
		pool->next_deadline = 0;
		dlist_foreach_modify(iter, &pool->busy)
		{
			CocoH1Conn *conn = dlist_container(CocoH1Conn, node, iter.cur);

			if (conn->req->deadline <= now)
			{
				dlist_delete(iter.cur);
				dlist_push_tail(&expired, iter.cur);
			}
			else if (pool->next_deadline == 0 || conn->req->deadline < pool->next_deadline)
				pool->next_deadline = conn->req->deadline;
		}
		while (!dlist_is_empty(&expired))
		{
			CocoH1Conn *conn = dlist_container(CocoH1Conn, node, dlist_pop_head_node(&expired));
			char		why[CURL_ERROR_SIZE];

			conn->place = PLACE_NONE;
			snprintf(why, sizeof(why),
					 "Operation timed out after %ld milliseconds with " UINT64_FORMAT " bytes received",
					 (long) ((now - conn->req->started) / 1000), conn->answer_bytes);
			fail(pool, conn, why, true, now);
		}
	}
	while (!dlist_is_empty(&pool->idle_lru))
	{
		CocoH1Conn *conn = dlist_tail_element(CocoH1Conn, node, &pool->idle_lru);

		if (now - conn->idle_since <= IDLE_MAX_USEC)
			break;
		close_conn(pool, conn);
	}
}
