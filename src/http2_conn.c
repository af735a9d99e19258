/*-------------------------------------------------------------------------
 *
 * http2_conn.c
 *	  HTTP/2 connections the worker frames itself (nghttp2), many POSTs at
 *	  once as streams of each.
 *
 * libcurl opens the connection (name resolution, the network guard, TLS
 * and its checks, ALPN: http_client.c); from then on nghttp2 frames it for
 * us, in memory: what it has to send is gathered and written in one go per
 * round (one TLS record for many streams), what arrives is fed to it, and
 * its callbacks only record a stream's answer.  libcurl 7.88's own HTTP/2
 * cost 81 to 119 us of the worker's time per delivery; most of it went to
 * per-transfer work that a stream of our own does not have.
 *
 * A stream's request carries a deadline (its hook's timeout): when it
 * passes, the stream is reset (CANCEL) and the request fails as timed
 * out (unless its answer came whole while its body was still going out),
 * while its neighbours go on.  A stream the receiver refused
 * (REFUSED_STREAM, or above a GOAWAY's last stream) was not processed: it
 * is sent again on another connection, once; so is one nghttp2 held back
 * (the receiver's stream limit) and could not send after a GOAWAY, and
 * one whose kept-alive connection died before any of its answer came.  A stream reset before
 * its answer was whole fails with the reset's error code; an answer that
 * came whole (ended, or all of the length it announced) stands even when
 * the receiver then resets the stream, before it read our body (an early
 * answer, RFC 9113 §8.1); a body past COCO_RESPONSE_MAX_READ is cut off
 * with a CANCEL, the answer standing.
 *
 * Connections are kept per origin, at most COCO_H2_MAX_STREAMS streams (or
 * the receiver's SETTINGS_MAX_CONCURRENT_STREAMS if lower) on each; one
 * the receiver said GOAWAY on takes no new stream and is closed when its
 * last one ends; the network guard is asked before a connection takes a
 * new stream.  An idle connection is closed after 118 s, or at once when
 * more than max_conns are open.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- nghttp2's callbacks neither raise errors nor call ours: they record a
 *	  stream's answer, and finished streams wait in the pool's finished list
 *	  until the round's event or timeout handling delivers them;
 *	- a stream's struct lives as long as nghttp2 knows the stream: one
 *	  whose request timed out stays, detached, until nghttp2 closes it;
 *	- a closed connection is freed by coco_h2_reap() only: an event of the
 *	  round may still name it;
 *	- memory: per connection a 16 kB read buffer, the gathered output (up
 *	  to 64 kB and a frame) and nghttp2's session; per stream a few hundred
 *	  bytes and the request's headers as nghttp2 keeps them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "lib/ilist.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "conn_io.h"
#include "http2_conn.h"
#include "network_guard.h"

#define READ_BUFFER		16384
#define OUT_GATHER		65536	/* written once this much is gathered */
#define IDLE_MAX_USEC	(118 * USECS_PER_SEC)
#define EVENT_TAG		UINT64CONST(3)
#define EVENT_TAG_MASK	UINT64CONST(3)

typedef struct H2Stream
{
	CocoH1Request *req;			/* NULL once detached (timed out) */
	CocoH2Conn *conn;
	int32		id;
	dlist_node	node;			/* in the pool's open or finished list */
	dlist_node	conn_node;		/* in its connection's streams */
	bool		in_conn;
	long		status;
	long		retry_after_s;
	bool		answered;		/* the final answer came whole */
	bool		body_cut;
	bool		reused;			/* its connection had finished streams before */
	bool		refused;		/* not processed by the receiver: send again */
	bool		finished;		/* in the finished list */
	bool		unsent;			/* its request never went: nghttp2 has no stream */
	uint64		answer_bytes;
	int64		length;			/* the answer's content-length, or -1 */
	size_t		body_read;
	size_t		body_sent;
	struct H2Stream *next_free;
} H2Stream;

typedef struct H2Origin
{
	char		origin[COCO_H1_ORIGIN_LEN];
	dlist_head	conns;
	int			nconns;
} H2Origin;

struct CocoH2Conn
{
	CocoH2Pool *pool;
	int			fd;
	CURL	   *easy;			/* TLS: libcurl's handle that holds the session */
	nghttp2_session *session;
	bool		closed;
	bool		draining;		/* GOAWAY, or the guard: no new stream */
	bool		dirty;			/* has output to gather */
	int			nstreams;		/* streams nghttp2 has open or queued */
	int			completed;		/* streams that finished on it */
	int			family;
	uint8		addr[16];
	uint32		watching;
	char		origin[COCO_H1_ORIGIN_LEN];
	H2Origin   *entry;
	dlist_node	origin_node;
	dlist_node	node;			/* in the pool's conns or closed list */
	dlist_node	dirty_node;
	dlist_head	streams;
	TimestampTz idle_since;
	StringInfoData out;
	int			out_sent;
	char		error[CURL_ERROR_SIZE];
	char		buf[READ_BUFFER];
};

struct CocoH2Pool
{
	int			epfd;
	HTAB	   *origins;
	dlist_head	conns;
	dlist_head	closed;
	dlist_head	dirty;
	dlist_head	open;			/* streams whose request waits for an answer */
	dlist_head	finished;		/* streams whose request is to be told */
	int			nconns;
	int			max_conns;
	TimestampTz next_deadline;
	H2Stream   *free_streams;
	nghttp2_session_callbacks *callbacks;
	nghttp2_option *option;
	StringInfoData scratch;		/* a request's header names and values */
	StringInfoData room_due;	/* origins that lost a connection, each ending in \0 */
	nghttp2_nv *nva;
	int			nva_size;
	CocoH1DoneFn done;
	CocoH1ReconnectFn reconnect;
	CocoH1ReleaseFn release;
	CocoH2RoomFn room;
	void	   *owner;
};

static void close_conn(CocoH2Pool *pool, CocoH2Conn *conn, const char *why);

/* A stream's request is done: it waits in the finished list to be told. */
static void
finish_stream(CocoH2Pool *pool, H2Stream *st)
{
	dlist_delete(&st->node);
	dlist_push_tail(&pool->finished, &st->node);
	st->finished = true;
}

static void
free_stream(CocoH2Pool *pool, H2Stream *st)
{
	if (st->in_conn)
		dlist_delete(&st->conn_node);
	st->in_conn = false;
	st->req = NULL;
	st->next_free = pool->free_streams;
	pool->free_streams = st;
}

static int
on_header(nghttp2_session *session, const nghttp2_frame *frame,
		  const uint8_t *name, size_t namelen, const uint8_t *value,
		  size_t valuelen, uint8_t flags, void *user_data)
{
	H2Stream   *st;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (st == NULL || st->req == NULL)
		return 0;
	st->answer_bytes += namelen + valuelen;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
	{
		long		status = 0;

		for (size_t i = 0; i < valuelen && i < 3; i++)
			status = status * 10 + (value[i] - '0');
		/* an interim answer (1xx) is followed by the final one */
		st->status = status;
		st->retry_after_s = 0;
		st->length = -1;
	}
	else if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
	{
		int64		length = 0;

		for (size_t i = 0; i < valuelen && i < 18; i++)
			length = length * 10 + (value[i] - '0');
		st->length = length;
	}
	else if (namelen == 11 && memcmp(name, "retry-after", 11) == 0)
		st->retry_after_s = coco_h1_retry_after((const char *) value, (int) valuelen);
	return 0;
}

static int
on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			  const uint8_t *data, size_t len, void *user_data)
{
	H2Stream   *st = nghttp2_session_get_stream_user_data(session, stream_id);

	if (st == NULL || st->req == NULL || st->answered)
		return 0;
	st->answer_bytes += len;
	if (st->body_read < COCO_RESPONSE_EXCERPT)
		memcpy(st->req->excerpt + st->body_read, data,
			   Min(len, COCO_RESPONSE_EXCERPT - st->body_read));
	st->body_read += len;
	if (st->body_read > COCO_RESPONSE_MAX_READ)
	{
		/* the answer stands; the rest of its body is not read */
		st->body_cut = true;
		st->answered = true;
		(void) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
										 NGHTTP2_CANCEL);
	}
	return 0;
}

static int
on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	CocoH2Conn *conn = (CocoH2Conn *) user_data;
	H2Stream   *st;

	if (frame->hd.type == NGHTTP2_GOAWAY)
	{
		conn->draining = true;
		return 0;
	}
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
		!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (st != NULL && st->req != NULL && st->status >= 200)
		st->answered = true;
	return 0;
}

/*
 * Whether the stream has its final answer, whole: ended, or reset before
 * its end came but with all of the length it announced.
 */
static bool
whole_answer(H2Stream *st)
{
	if (!st->answered && st->status >= 200 && st->length >= 0 &&
		(int64) st->body_read == st->length)
		st->answered = true;
	return st->answered;
}

static int
on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
				void *user_data)
{
	CocoH2Conn *conn = (CocoH2Conn *) user_data;
	H2Stream   *st = nghttp2_session_get_stream_user_data(session, stream_id);

	if (st == NULL || conn->closed || st->unsent)
		return 0;
	conn->nstreams--;
	if (st->req == NULL)
	{
		free_stream(conn->pool, st);	/* timed out already */
		return 0;
	}
	conn->completed++;
	if (!st->answered && !whole_answer(st))
	{
		if (error_code == NGHTTP2_REFUSED_STREAM)
			st->refused = true;
		else
			snprintf(st->req->errbuf, CURL_ERROR_SIZE,
					 "HTTP/2 stream %d was not closed cleanly: %s (err %u)",
					 stream_id, nghttp2_http2_strerror(error_code), error_code);
	}
	finish_stream(conn->pool, st);
	return 0;
}

/*
 * A request nghttp2 held back (more streams than the receiver allows at
 * once) and then could not send: the receiver said GOAWAY meanwhile.  It
 * never reached the receiver: another connection gets it.
 */
static int
on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame,
				  int lib_error_code, void *user_data)
{
	CocoH2Conn *conn = (CocoH2Conn *) user_data;
	dlist_iter	iter;

	if (frame->hd.type != NGHTTP2_HEADERS || conn->closed)
		return 0;
	conn->draining = true;
	dlist_foreach(iter, &conn->streams)
	{
		H2Stream   *st = dlist_container(H2Stream, conn_node, iter.cur);

		if (st->id != frame->hd.stream_id || st->unsent)
			continue;
		st->unsent = true;
		conn->nstreams--;
		if (st->req == NULL)
			free_stream(conn->pool, st);	/* timed out already */
		else if (!st->finished)
		{
			st->refused = true;
			finish_stream(conn->pool, st);
		}
		break;
	}
	return 0;
}

/* A request's body, as nghttp2 frames it. */
static ssize_t
read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
		  size_t length, uint32_t *data_flags, nghttp2_data_source *source,
		  void *user_data)
{
	H2Stream   *st = (H2Stream *) source->ptr;
	size_t		n;

	if (st->req == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* resets the stream */
	n = Min(length, st->req->body_len - st->body_sent);
	memcpy(buf, st->req->body + st->body_sent, n);
	st->body_sent += n;
	if (st->body_sent == st->req->body_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t) n;
}

CocoH2Pool *
coco_h2_pool_create(int epfd, CocoH1DoneFn done, CocoH1ReconnectFn reconnect,
					CocoH1ReleaseFn release, CocoH2RoomFn room, void *owner)
{
	CocoH2Pool *pool = MemoryContextAllocZero(TopMemoryContext, sizeof(CocoH2Pool));
	MemoryContext old;
	HASHCTL		ctl = {0};

	ctl.keysize = COCO_H1_ORIGIN_LEN;
	ctl.entrysize = sizeof(H2Origin);
	ctl.hcxt = TopMemoryContext;
	pool->origins = hash_create("cocohooks HTTP/2 origins", 64, &ctl,
								HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	pool->epfd = epfd;
	dlist_init(&pool->conns);
	dlist_init(&pool->closed);
	dlist_init(&pool->dirty);
	dlist_init(&pool->open);
	dlist_init(&pool->finished);
	pool->max_conns = 256;
	pool->done = done;
	pool->reconnect = reconnect;
	pool->release = release;
	pool->room = room;
	pool->owner = owner;
	if (nghttp2_session_callbacks_new(&pool->callbacks) != 0 ||
		nghttp2_option_new(&pool->option) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	nghttp2_session_callbacks_set_on_header_callback(pool->callbacks, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(pool->callbacks, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(pool->callbacks, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(pool->callbacks, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_not_send_callback(pool->callbacks, on_frame_not_send);
	/* until the receiver's SETTINGS say otherwise */
	nghttp2_option_set_peer_max_concurrent_streams(pool->option, COCO_H2_MAX_STREAMS);
	old = MemoryContextSwitchTo(TopMemoryContext);
	initStringInfo(&pool->scratch);
	initStringInfo(&pool->room_due);
	MemoryContextSwitchTo(old);
	pool->nva_size = 32;
	pool->nva = MemoryContextAlloc(TopMemoryContext, pool->nva_size * sizeof(nghttp2_nv));
	return pool;
}

/* At most this many connections are kept (more may be busy at a time). */
void
coco_h2_set_max_conns(CocoH2Pool *pool, int max_conns)
{
	pool->max_conns = max_conns;
}

static void
watch(CocoH2Pool *pool, CocoH2Conn *conn, uint32 events)
{
	coco_conn_watch(pool->epfd, conn->fd, (uint64) (uintptr_t) conn | EVENT_TAG,
					&conn->watching, events);
}

static void
mark_dirty(CocoH2Pool *pool, CocoH2Conn *conn)
{
	if (conn->dirty || conn->closed)
		return;
	conn->dirty = true;
	dlist_push_tail(&pool->dirty, &conn->dirty_node);
}

/* Streams a connection may carry at once. */
static int
stream_limit(CocoH2Conn *conn)
{
	uint32		theirs = nghttp2_session_get_remote_settings(conn->session,
															 NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

	return (int) Min(theirs, (uint32) COCO_H2_MAX_STREAMS);
}

/*
 * A connection to origin that may take another stream now, or NULL.  One
 * to an address the network guard no longer allows takes none (a new
 * connection is then refused by the guard as it is made).
 */
CocoH2Conn *
coco_h2_conn_with_room(CocoH2Pool *pool, const char *origin)
{
	H2Origin   *entry = hash_search(pool->origins, origin, HASH_FIND, NULL);
	dlist_mutable_iter iter;

	if (entry == NULL)
		return NULL;
	dlist_foreach_modify(iter, &entry->conns)
	{
		CocoH2Conn *conn = dlist_container(CocoH2Conn, origin_node, iter.cur);
		const char *why;

		if (conn->draining || conn->nstreams >= stream_limit(conn))
			continue;
		if (!coco_address_allowed(conn->family, conn->addr, &why))
		{
			conn->draining = true;
			if (conn->nstreams == 0)
			{
				bool		last = (entry->nconns == 1);

				close_conn(pool, conn, "the network guard no longer allows the address");
				if (last)
					return NULL;	/* the entry went with it */
			}
			continue;
		}
		return conn;
	}
	return NULL;
}

/* Connections open to origin. */
int
coco_h2_conns(CocoH2Pool *pool, const char *origin)
{
	H2Origin   *entry = hash_search(pool->origins, origin, HASH_FIND, NULL);

	return entry ? entry->nconns : 0;
}

/*
 * Gathers what nghttp2 has to send and writes it, as much as the
 * connection takes.  False on failure, with conn->error set.
 */
static bool
conn_flush(CocoH2Pool *pool, CocoH2Conn *conn)
{
	for (;;)
	{
		struct iovec iov;
		ssize_t		n;

		if (conn->out_sent == conn->out.len)
		{
			resetStringInfo(&conn->out);
			conn->out_sent = 0;
			while (conn->out.len < OUT_GATHER)
			{
				const uint8_t *data;
				ssize_t		len = nghttp2_session_mem_send(conn->session, &data);

				if (len < 0)
				{
					snprintf(conn->error, sizeof(conn->error),
							 "HTTP/2 framing failed: %s", nghttp2_strerror((int) len));
					return false;
				}
				if (len == 0)
					break;
				appendBinaryStringInfo(&conn->out, (const char *) data, (int) len);
			}
			if (conn->out.len == 0)
				break;
		}
		iov.iov_base = conn->out.data + conn->out_sent;
		iov.iov_len = conn->out.len - conn->out_sent;
		n = coco_conn_write(conn->fd, conn->easy, &iov, 1, conn->error);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return false;
		}
		conn->out_sent += (int) n;
	}
	watch(pool, conn, conn->out_sent < conn->out.len ? EPOLLIN | EPOLLOUT : EPOLLIN);
	return true;
}

/*
 * Closes conn.  Its streams' requests fail with why, but for those the
 * receiver had not answered at all on a connection that served before,
 * which go again on another (once).
 */
static void
close_conn(CocoH2Pool *pool, CocoH2Conn *conn, const char *why)
{
	dlist_mutable_iter iter;

	if (conn->closed)
		return;
	conn->closed = true;
	dlist_foreach_modify(iter, &conn->streams)
	{
		H2Stream   *st = dlist_container(H2Stream, conn_node, iter.cur);

		dlist_delete(iter.cur);
		st->in_conn = false;
		if (st->req == NULL)
		{
			free_stream(pool, st);
			continue;
		}
		if (st->finished)
			continue;
		if (whole_answer(st))
		{
			/* an early answer whose stream was still open: it stands */
		}
		else if (st->reused && st->answer_bytes == 0 && !st->req->retried)
			st->refused = true;
		else
			strlcpy(st->req->errbuf, why, CURL_ERROR_SIZE);
		finish_stream(pool, st);
	}
	/* no callback of ours runs from here: closed is set */
	nghttp2_session_del(conn->session);
	conn->session = NULL;
	(void) epoll_ctl(pool->epfd, EPOLL_CTL_DEL, conn->fd, NULL);
	if (conn->easy)
		pool->release(pool->owner, conn->easy);	/* libcurl closes it */
	else
		close(conn->fd);
	conn->fd = -1;
	conn->easy = NULL;
	if (conn->dirty)
		dlist_delete(&conn->dirty_node);
	conn->dirty = false;
	/* requests waiting for room at its receiver may get a new connection */
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		appendBinaryStringInfo(&pool->room_due, conn->origin, strlen(conn->origin) + 1);
		MemoryContextSwitchTo(old);
	}
	dlist_delete(&conn->origin_node);
	if (--conn->entry->nconns == 0)
		(void) hash_search(pool->origins, conn->origin, HASH_REMOVE, NULL);
	conn->entry = NULL;
	dlist_delete(&conn->node);
	dlist_push_head(&pool->closed, &conn->node);
	pool->nconns--;
}

/* Frees the connections closed since the last call. */
void
coco_h2_reap(CocoH2Pool *pool)
{
	while (!dlist_is_empty(&pool->closed))
	{
		CocoH2Conn *conn = dlist_container(CocoH2Conn, node,
										   dlist_pop_head_node(&pool->closed));

		pfree(conn->out.data);
		pfree(conn);
	}
}

/*
 * Takes over fd, a connected socket to origin on which ALPN chose HTTP/2,
 * as a connection of the pool; with TLS, easy is the libcurl handle that
 * holds its session (as for http1_conn.c).  received holds bytes already
 * read from it.  NULL if nghttp2 could not start a session (the socket is
 * then the caller's still).
 */
CocoH2Conn *
coco_h2_adopt(CocoH2Pool *pool, int fd, CURL *easy, const char *origin,
			  const char *received, size_t received_len)
{
	CocoH2Conn *conn = MemoryContextAllocZero(TopMemoryContext, sizeof(CocoH2Conn));
	nghttp2_settings_entry settings[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0},
	};
	MemoryContext old;
	bool		found;

	if (nghttp2_session_client_new2(&conn->session, pool->callbacks, conn,
									pool->option) != 0)
	{
		pfree(conn);
		return NULL;
	}
	if (nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings,
								lengthof(settings)) != 0 ||
		(received_len > 0 &&
		 nghttp2_session_mem_recv(conn->session, (const uint8_t *) received,
								  received_len) < 0))
	{
		nghttp2_session_del(conn->session);
		pfree(conn);
		return NULL;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	initStringInfo(&conn->out);
	MemoryContextSwitchTo(old);
	conn->pool = pool;
	conn->fd = fd;
	conn->easy = easy;
	dlist_init(&conn->streams);
	strlcpy(conn->origin, origin, sizeof(conn->origin));
	conn->entry = hash_search(pool->origins, origin, HASH_ENTER, &found);
	if (!found)
	{
		dlist_init(&conn->entry->conns);
		conn->entry->nconns = 0;
	}
	conn->entry->nconns++;
	dlist_push_tail(&conn->entry->conns, &conn->origin_node);
	dlist_push_tail(&pool->conns, &conn->node);
	conn->family = coco_conn_peer(fd, conn->addr);
	conn->idle_since = GetCurrentTimestamp();
	pool->nconns++;
	watch(pool, conn, EPOLLIN);
	mark_dirty(pool, conn);		/* the preface and our SETTINGS */
	return conn;
}

/* Room in the scratch buffer for len more bytes, without moving it later. */
static void
scratch_need(CocoH2Pool *pool, size_t len)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	enlargeStringInfo(&pool->scratch, (int) len);
	MemoryContextSwitchTo(old);
}

static void
add_nv(nghttp2_nv *nv, const char *name, size_t namelen, const char *value,
	   size_t valuelen)
{
	nv->name = (uint8_t *) name;
	nv->namelen = namelen;
	nv->value = (uint8_t *) value;
	nv->valuelen = valuelen;
	/* nghttp2 copies them */
	nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/* Whether a header may not go over HTTP/2 (RFC 9113 §8.2.2), or is :authority. */
static bool
not_for_http2(const char *name, int len)
{
	static const char *const skip[] = {
		"connection", "keep-alive", "proxy-connection", "transfer-encoding",
		"upgrade", "host", "te", "content-length"
	};

	for (size_t i = 0; i < lengthof(skip); i++)
		if ((int) strlen(skip[i]) == len && pg_strncasecmp(name, skip[i], len) == 0)
			return true;
	return false;
}

/*
 * The request's header block: pseudo-headers, the attempt's headers with
 * their names in lower case, accept and content-length as over HTTP/1.1.
 * Returns the number of entries in pool->nva.
 */
static int
request_block(CocoH2Pool *pool, CocoH1Request *req)
{
	const CocoH1Url *url = &req->url;
	StringInfo	s = &pool->scratch;
	size_t		need = 64 + url->host_len + url->target_len;
	int			count = 6;
	int			n = 0;
	bool		accept = false;
	char	   *at;

	for (const struct curl_slist *h = req->headers; h; h = h->next)
	{
		need += strlen(h->data) + 1;
		count++;
	}
	if (count > pool->nva_size)
	{
		pool->nva_size = count * 2;
		pool->nva = repalloc(pool->nva, pool->nva_size * sizeof(nghttp2_nv));
	}
	resetStringInfo(s);
	scratch_need(pool, need);
	at = s->data;

	add_nv(&pool->nva[n++], ":method", 7, "POST", 4);
	add_nv(&pool->nva[n++], ":scheme", 7, url->tls ? "https" : "http", url->tls ? 5 : 4);
	/* :authority as Host over HTTP/1.1 */
	memcpy(at, url->host, url->host_len);
	if (url->port_given && url->port != (url->tls ? 443 : 80))
		add_nv(&pool->nva[n++], ":authority", 10, at,
			   url->host_len + sprintf(at + url->host_len, ":%d", url->port));
	else
		add_nv(&pool->nva[n++], ":authority", 10, at, url->host_len);
	at += pool->nva[n - 1].valuelen + 1;
	if (url->target_len == 0 || url->target[0] == '?')
	{
		at[0] = '/';
		memcpy(at + 1, url->target, url->target_len);
		add_nv(&pool->nva[n++], ":path", 5, at, url->target_len + 1);
		at += url->target_len + 2;
	}
	else
		add_nv(&pool->nva[n++], ":path", 5, url->target, url->target_len);
	for (const struct curl_slist *h = req->headers; h; h = h->next)
	{
		const char *name;
		const char *value;
		int			name_len;
		int			value_len;

		if (!coco_h1_header_field(h->data, &name, &name_len, &value, &value_len) ||
			not_for_http2(name, name_len))
			continue;
		if (name_len == 6 && pg_strncasecmp(name, "accept", 6) == 0)
			accept = true;
		for (int i = 0; i < name_len; i++)
			at[i] = pg_ascii_tolower((unsigned char) name[i]);
		/* trailing blanks are no part of a value */
		while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
			value_len--;
		add_nv(&pool->nva[n++], at, name_len, value, value_len);
		at += name_len + 1;
	}
	if (!accept)
		add_nv(&pool->nva[n++], "accept", 6, "*/*", 3);
	add_nv(&pool->nva[n++], "content-length", 14, at,
		   sprintf(at, "%zu", req->body_len));
	return n;
}

static H2Stream *
get_stream(CocoH2Pool *pool)
{
	H2Stream   *st = pool->free_streams;

	if (st)
		pool->free_streams = st->next_free;
	else
		st = MemoryContextAlloc(TopMemoryContext, sizeof(H2Stream));
	memset(st, 0, sizeof(*st));
	st->length = -1;
	return st;
}

/*
 * Starts req as a stream of conn (from coco_h2_conn_with_room or
 * coco_h2_adopt).  It is written with the round's other output, by
 * coco_h2_flush() or the connection's next event; a failure is reported
 * from event or timeout handling, never from here.
 */
void
coco_h2_send(CocoH2Pool *pool, CocoH2Conn *conn, CocoH1Request *req)
{
	H2Stream   *st = get_stream(pool);
	nghttp2_data_provider body = {0};
	int			n = request_block(pool, req);
	int32		id;

	st->req = req;
	st->conn = conn;
	st->reused = conn->completed > 0;
	body.source.ptr = st;
	body.read_callback = read_body;
	id = nghttp2_submit_request(conn->session, NULL, pool->nva, n,
								req->body_len > 0 ? &body : NULL, st);
	if (id < 0)
	{
		/* no stream id left, or the session is going: another connection */
		conn->draining = true;
		st->refused = !req->retried;
		if (!st->refused)
			snprintf(req->errbuf, CURL_ERROR_SIZE, "could not start an HTTP/2 stream: %s",
					 nghttp2_strerror(id));
		dlist_push_tail(&pool->finished, &st->node);
		st->finished = true;
		pool->next_deadline = 1;	/* told at once */
		return;
	}
	st->id = id;
	st->in_conn = true;
	dlist_push_tail(&conn->streams, &st->conn_node);
	dlist_push_tail(&pool->open, &st->node);
	conn->nstreams++;
	if (pool->next_deadline == 0 || req->deadline < pool->next_deadline)
		pool->next_deadline = req->deadline;
	mark_dirty(pool, conn);
}

/* Closes conn if it is done: said goodbye and ended its streams, or failed. */
static void
close_if_done(CocoH2Pool *pool, CocoH2Conn *conn)
{
	if (conn->closed || conn->nstreams > 0)
		return;
	if (conn->draining ||
		(!nghttp2_session_want_read(conn->session) &&
		 !nghttp2_session_want_write(conn->session)))
		close_conn(pool, conn, "the receiver ended the connection");
	else
		conn->idle_since = GetCurrentTimestamp();
}

/* Writes the output every connection gathered since the last call. */
void
coco_h2_flush(CocoH2Pool *pool)
{
	while (!dlist_is_empty(&pool->dirty))
	{
		CocoH2Conn *conn = dlist_container(CocoH2Conn, dirty_node,
										   dlist_pop_head_node(&pool->dirty));

		conn->dirty = false;
		if (!conn_flush(pool, conn))
		{
			close_conn(pool, conn, conn->error);
			pool->next_deadline = 1;	/* its requests are told at once */
		}
	}
}

/*
 * Tells the owner about every finished stream: its answer, its failure,
 * or (refused) that it goes again on another connection; then that its
 * origin has room again.
 */
static void
tell_finished(CocoH2Pool *pool, TimestampTz now)
{
	while (!dlist_is_empty(&pool->finished))
	{
		H2Stream   *st = dlist_container(H2Stream, node,
										 dlist_pop_head_node(&pool->finished));
		CocoH1Request *req = st->req;
		CocoHttpResult result = {0};
		char		origin[COCO_H1_ORIGIN_LEN];

		strlcpy(origin, req->url.origin, sizeof(origin));
		if (st->refused && !req->retried)
		{
			free_stream(pool, st);
			req->retried = true;
			pool->reconnect(pool->owner, req);
			continue;
		}
		result.duration_ms = (now - req->started) / 1000.0;
		result.multiplexed = true;
		result.response = req->excerpt;
		if (st->answered)
		{
			result.status = st->status;
			result.retry_after_s = st->retry_after_s;
			result.response_len = (int) Min(st->body_read, (size_t) COCO_RESPONSE_EXCERPT);
		}
		else
		{
			if (st->refused)
				strlcpy(req->errbuf, "the receiver refused the HTTP/2 stream twice",
						CURL_ERROR_SIZE);
			result.error = req->errbuf;
		}
		free_stream(pool, st);
		pool->done(pool->owner, req, &result);
		pool->room(pool->owner, origin);
	}
	if (pool->room_due.len > 0)
	{
		/* connections closed since: the callbacks may close more, told next time */
		int			len = pool->room_due.len;
		char	   *due = palloc(len);

		memcpy(due, pool->room_due.data, len);
		resetStringInfo(&pool->room_due);
		for (int off = 0; off < len; off += strlen(due + off) + 1)
			pool->room(pool->owner, due + off);
		pfree(due);
	}
}

bool
coco_h2_owns_event(uint64 data)
{
	return (data & EVENT_TAG_MASK) == EVENT_TAG;
}

/* Reads what has come, hands it to nghttp2 and writes what it answers. */
static void
conn_input(CocoH2Pool *pool, CocoH2Conn *conn)
{
	for (;;)
	{
		ssize_t		n = coco_conn_read(conn->fd, conn->easy, conn->buf, READ_BUFFER,
									 conn->error);
		ssize_t		used;

		if (n == 0)
		{
			close_conn(pool, conn, "the receiver closed the connection");
			return;
		}
		if (n < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			close_conn(pool, conn, conn->error);
			return;
		}
		used = nghttp2_session_mem_recv(conn->session, (const uint8_t *) conn->buf, n);
		if (used < 0)
		{
			snprintf(conn->error, sizeof(conn->error),
					 "HTTP/2 framing error from the receiver: %s",
					 nghttp2_strerror((int) used));
			close_conn(pool, conn, conn->error);
			return;
		}
	}
	if (!conn_flush(pool, conn))
	{
		close_conn(pool, conn, conn->error);
		return;
	}
	close_if_done(pool, conn);
}

/* Handles what epoll reported for a connection of the pool. */
void
coco_h2_event(CocoH2Pool *pool, uint64 data, uint32 events, TimestampTz now)
{
	CocoH2Conn *conn = (CocoH2Conn *) (uintptr_t) (data & ~EVENT_TAG_MASK);

	if (!conn->closed)
	{
		if ((events & EPOLLOUT) && !conn_flush(pool, conn))
			close_conn(pool, conn, conn->error);
		else if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_input(pool, conn);
	}
	tell_finished(pool, now);
}

/* Milliseconds until the earliest request's deadline; -1 when none. */
long
coco_h2_timeout_ms(CocoH2Pool *pool, TimestampTz now)
{
	if (!dlist_is_empty(&pool->finished) || pool->room_due.len > 0)
		return 0;
	if (pool->next_deadline == 0)
		return -1;
	if (pool->next_deadline <= now)
		return 0;
	return (long) ((pool->next_deadline - now + 999) / 1000);
}

/*
 * Resets the streams whose deadline has passed (their requests fail as
 * timed out), tells finished ones, and closes connections idle too long
 * or beyond max_conns.
 */
void
coco_h2_expire(CocoH2Pool *pool, TimestampTz now)
{
	dlist_mutable_iter iter;

	if (pool->next_deadline != 0 && pool->next_deadline <= now)
	{
		dlist_head	expired;

		dlist_init(&expired);
		pool->next_deadline = 0;
		dlist_foreach_modify(iter, &pool->open)
		{
			H2Stream   *st = dlist_container(H2Stream, node, iter.cur);

			if (st->req->deadline > now)
			{
				if (pool->next_deadline == 0 || st->req->deadline < pool->next_deadline)
					pool->next_deadline = st->req->deadline;
				continue;
			}
			dlist_delete(iter.cur);
			dlist_push_tail(&expired, iter.cur);
		}
		while (!dlist_is_empty(&expired))
		{
			H2Stream   *st = dlist_container(H2Stream, node, dlist_pop_head_node(&expired));
			CocoH1Request *req = st->req;
			CocoHttpResult result = {0};

			/* detached: nghttp2 closes the stream as the reset goes out */
			st->req = NULL;
			(void) nghttp2_submit_rst_stream(st->conn->session, NGHTTP2_FLAG_NONE,
											 st->id, NGHTTP2_CANCEL);
			mark_dirty(pool, st->conn);
			result.multiplexed = true;
			result.duration_ms = (now - req->started) / 1000.0;
			result.response = req->excerpt;
			if (whole_answer(st))
			{
				/* answered early, while its body was still going out */
				result.status = st->status;
				result.retry_after_s = st->retry_after_s;
				result.response_len = (int) Min(st->body_read, (size_t) COCO_RESPONSE_EXCERPT);
			}
			else
			{
				snprintf(req->errbuf, CURL_ERROR_SIZE,
						 "Operation timed out after %ld milliseconds with " UINT64_FORMAT " bytes received",
						 (long) ((now - req->started) / 1000), st->answer_bytes);
				result.error = req->errbuf;
				result.timed_out = true;
			}
			pool->done(pool->owner, req, &result);
		}
	}
	tell_finished(pool, now);
	dlist_foreach_modify(iter, &pool->conns)
	{
		CocoH2Conn *conn = dlist_container(CocoH2Conn, node, iter.cur);

		/* a connection said GOAWAY on whose last stream timed out goes too */
		if (conn->nstreams == 0 &&
			(conn->draining || now - conn->idle_since > IDLE_MAX_USEC ||
			 pool->nconns > pool->max_conns))
			close_conn(pool, conn, "idle");
	}
}
