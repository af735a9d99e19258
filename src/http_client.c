/*-------------------------------------------------------------------------
 *
 * http_client.c
 *	  Asynchronous HTTP POSTs for the worker, on one libcurl multi handle.
 *
 * libcurl is driven with its socket interface: it tells us which sockets
 * to watch and when its next timeout is due, and we keep those sockets in
 * an epoll set of our own.  The worker waits on that one epoll descriptor
 * in the same WaitEventSet as its latch and postmaster death, so a delivery
 * in flight never keeps it from new events, config reloads or shutdown.
 *
 * Kept-alive HTTP/1.1 is ours (http1_conn.c, whose sockets share the
 * epoll set, told apart by the low bit of their event data): to every
 * http:// receiver, and to https ones that speak HTTP/1.1.  The first
 * connection to an https receiver is a probe offering HTTP/2 too, and
 * requests that come meanwhile wait for it (tls_protocols.c): ALPN's
 * choice decides whether the connection, and the receiver's later ones,
 * carry HTTP/1.1 or HTTP/2; with cocohooks.http2 = off every https
 * receiver gets HTTP/1.1.  libcurl only opens such a connection
 * (CURLOPT_CONNECT_ONLY, on a fresh connection, offering only HTTP/1.1
 * but for a probe), with the same resolution, network guard, TLS checks
 * and timeout as any transfer.  A plain socket is then
 * taken over (a duplicate: libcurl closes its own as the handle is
 * removed); a TLS one stays libcurl's, its handle left in the multi handle
 * for curl_easy_send() and curl_easy_recv() until the connection closes.
 * libcurl's per-request work cost three quarters of the worker's time per
 * delivery (55 against 13 us to a local nginx; over TLS 48 against 24).
 * Every other request, and a URL that needs rewriting (coco_h1_parse_url),
 * is a libcurl transfer.
 *
 * HTTP/2 (cocohooks.http2): an https receiver that offers it by ALPN gets
 * it, framed by the worker too (http2_conn.c, on the connection ALPN
 * chose it on): its deliveries are streams of the connections open to it,
 * at most 100 on each (or the receiver's SETTINGS_MAX_CONCURRENT_STREAMS),
 * and a new connection is opened only when they are full and none is
 * being opened, up to cocohooks.max_host_connections; meanwhile requests
 * wait in the receiver's list (tls_protocols.c's entry).  Streams started
 * in a round are written together: by coco_http_drive(), or by
 * coco_http_flush() before the worker waits.  http:// receivers get
 * HTTP/1.1 unless asked for HTTP/2 with prior knowledge, which, like an
 * https receiver whose ALPN cannot be read, is a libcurl transfer
 * (libcurl's default of at most 100 streams per connection, its cap of
 * cocohooks.max_host_connections per host).
 *
 * Every transfer is restricted to http and https, follows no redirect, and
 * keeps only the first kilobyte of the response body, reading at most
 * 64 kB of it.  Easy handles are kept for reuse; the multi
 * handle keeps connections alive between requests to the same receiver,
 * and a share handle keeps TLS sessions (and DNS answers) for every handle.
 * HTTPS always verifies the certificate and the host name, with TLS 1.2 or
 * later; cocohooks.ca_file names certificates trusted in addition to the
 * system's (set as libcurl's CA file, while its CA directory, the
 * system's, stays in use).  Every address is checked by the network guard
 * as it is connected to.
 *
 * Runs in: the worker.
 *
 * Invariants:
 *	- no libcurl callback raises a PostgreSQL error or allocates memory:
 *	  callbacks only record state and return codes;
 *	- the completion callback is called from coco_http_drive(), outside of
 *	  libcurl; coco_http_drive() never blocks, and coco_http_post() may
 *	  raise out-of-memory errors;
 *	- the handles and their requests live in TopMemoryContext for the
 *	  worker's life: easy handles are reused, but for one that went with a
 *	  TLS connection of ours, freed when the connection is closed;
 *	- a POST's headers and body stay valid until its completion callback
 *	  has run; its URL is copied when the request is ours;
 *	- the completion callback of a request of ours is called from
 *	  coco_http_drive() too, never from coco_http_post().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http1_conn.h"
#include "http1_wire.h"
#include "http2_conn.h"
#include "http_client.h"
#include "network_guard.h"
#include "settings.h"
#include "tls_protocols.h"

#define MAX_EPOLL_EVENTS	64

typedef struct HttpRequest
{
	CURL	   *easy;
	void	   *arg;
	char		errbuf[CURL_ERROR_SIZE];
	int			nsockets;		/* sockets libcurl asked for */
	int			nblocked;		/* of them, refused by the network guard */
	char		blocked[160];	/* why the last one was refused */
	size_t		body_read;		/* response body bytes read so far */
	bool		body_cut;		/* stopped reading at COCO_RESPONSE_MAX_READ */
	char		response[COCO_RESPONSE_EXCERPT];	/* its first bytes */
	uint32		configured;		/* http->generation its options are set for */
	bool		connect_only;	/* the handle is set to only connect */
	bool		own;			/* HTTP/1.1 on a connection of our own */
	bool		connecting;		/* the handle opens that connection */
	bool		probe;			/* it offers HTTP/2 too (tls_protocols.c) */
	dlist_node	wait_node;		/* waiting for its receiver's probe */
	CocoH1Request h1;
	char	   *url;			/* its URL, when own */
	size_t		url_size;
	struct HttpRequest *next_free;
} HttpRequest;

#define WATCH_NONE	0xFF			/* not in the epoll set */

struct CocoHttp
{
	CURLM	   *multi;
	CURLSH	   *share;			/* TLS sessions, reused across handles */
	int			epfd;
	/* per descriptor below nwatch: the events registered in epfd */
	int			nwatch;
	uint8	   *have;
	CocoHttpDoneFn done;
	long		timeout_ms;		/* libcurl's next timeout; -1 none */
	TimestampTz timer_set_at;
	int			active;
	HttpRequest *free_list;
	uint32		generation;		/* bumped when a setting of every handle changes */
	char	   *ca_file;		/* cocohooks.ca_file the handles are set up with */
	CocoH1Pool *h1;				/* kept-alive HTTP/1.1 connections of our own */
	CocoH2Pool *h2;				/* HTTP/2 connections of our own */
	int			max_host_connections;
	int			nwaiting;		/* requests in the origins' waiting lists */
};

static void h1_done(void *owner, CocoH1Request *h1, const CocoHttpResult *result);
static void h1_reconnect(void *owner, CocoH1Request *h1);
static void h1_release(void *owner, CURL *easy);
static void h2_reconnect(void *owner, CocoH1Request *h1);
static void h2_room(void *owner, const char *origin);
static long libcurl_timeout_ms(CocoHttp *http, TimestampTz now);

/*
 * Puts fd in the epoll set with events (none: out of it).  have says what
 * we registered, so a change is usually one epoll_ctl call that succeeds.
 * Closing a socket takes it out of the set behind our back; when its
 * number comes back for a new socket, the call fails and the other one
 * (ADD for MOD) is made.
 */
static void
set_watch(CocoHttp *http, int fd, uint8 events)
{
	uint8		have = (fd >= 0 && fd < http->nwatch) ? http->have[fd] : 0;
	struct epoll_event ev = {0};
	int			op;

	if (have == events)
		return;
	if (events == WATCH_NONE)
		(void) epoll_ctl(http->epfd, EPOLL_CTL_DEL, fd, NULL);
	else
	{
		/* even: libcurl's socket; http1_conn.c tags its own with the low bit */
		ev.data.u64 = (uint64) fd << 1;
		ev.events = events;
		op = (have == WATCH_NONE) ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
		if (epoll_ctl(http->epfd, op, fd, &ev) != 0 &&
			(errno == EEXIST || errno == ENOENT))
			(void) epoll_ctl(http->epfd,
							 op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
							 fd, &ev);
	}
	if (fd >= 0 && fd < http->nwatch)
		http->have[fd] = events;
}

/* libcurl tells which sockets to watch, and for what. */
static int
socket_callback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	CocoHttp   *http = (CocoHttp *) userp;
	uint8		events = 0;

	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EPOLLOUT;
	set_watch(http, fd, events ? events : WATCH_NONE);
	return 0;
}

static int
timer_callback(CURLM *multi, long timeout_ms, void *userp)
{
	CocoHttp   *http = (CocoHttp *) userp;

	http->timeout_ms = timeout_ms;
	http->timer_set_at = GetCurrentTimestamp();
	return 0;
}

/* Notes that the guard refused an address, for the request's error. */
static void
note_blocked(HttpRequest *req, const char *address, const char *why)
{
	req->nblocked++;
	snprintf(req->blocked, sizeof(req->blocked),
			 "blocked: %s is %s, not in cocohooks.allowed_networks",
			 address, why);
}

/*
 * libcurl asks for a socket for each address it tries: the network guard
 * decides here, on the very address the socket would connect to.
 */
static curl_socket_t
open_socket_callback(void *clientp, curlsocktype purpose,
					 struct curl_sockaddr *address)
{
	HttpRequest *req = (HttpRequest *) clientp;
	char		text[INET6_ADDRSTRLEN];
	const char *why;

	req->nsockets++;
	if (!coco_sockaddr_allowed(&address->addr, text, sizeof(text), &why))
	{
		note_blocked(req, text, why);
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

#if LIBCURL_VERSION_NUM >= 0x075000
/*
 * Called before each request, on a new or a kept-alive connection: a
 * connection opened before cocohooks.allowed_networks was narrowed must
 * not be reused for an address it no longer allows.
 */
static int
prereq_callback(void *clientp, char *primary_ip, char *local_ip,
				int primary_port, int local_port)
{
	HttpRequest *req = (HttpRequest *) clientp;
	uint8		addr[16];
	int			family = coco_parse_ip(primary_ip, addr);
	const char *why;

	if (!coco_address_allowed(family, addr, &why))
	{
		note_blocked(req, primary_ip, why);
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}
#endif

/*
 * Keeps the first COCO_RESPONSE_EXCERPT bytes of the response body for the
 * log and drops the rest as it arrives; past COCO_RESPONSE_MAX_READ the
 * transfer is stopped (the status and headers have arrived by then).
 */
static size_t
read_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	HttpRequest *req = (HttpRequest *) userdata;
	size_t		n = size * nmemb;

	if (req->body_read < COCO_RESPONSE_EXCERPT)
	{
		size_t		keep = Min(n, COCO_RESPONSE_EXCERPT - req->body_read);

		memcpy(req->response + req->body_read, ptr, keep);
	}
	req->body_read += n;
	if (req->body_read > COCO_RESPONSE_MAX_READ)
	{
		req->body_cut = true;
		return 0;				/* libcurl ends the transfer: CURLE_WRITE_ERROR */
	}
	return n;
}

CocoHttp *
coco_http_create(CocoHttpDoneFn done)
{
	CocoHttp   *http = MemoryContextAllocZero(TopMemoryContext, sizeof(CocoHttp));

	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));
	http->multi = curl_multi_init();
	if (http->multi == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	http->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (http->epfd < 0)
		ereport(ERROR,
				(errcode_for_socket_access(),
				 errmsg("could not create epoll descriptor: %m")));
	http->share = curl_share_init();
	if (http->share == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl share handle")));
	curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(http->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	http->done = done;
	http->h1 = coco_h1_pool_create(http->epfd, h1_done, h1_reconnect, h1_release, http);
	http->h2 = coco_h2_pool_create(http->epfd, h1_done, h2_reconnect, h1_release,
								   h2_room, http);
	http->max_host_connections = 32;
	http->timeout_ms = -1;
	http->nwatch = Max(max_safe_fds, 1024);
	http->have = MemoryContextAlloc(TopMemoryContext, http->nwatch);
	memset(http->have, WATCH_NONE, http->nwatch);
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
	return http;
}

int
coco_http_wait_fd(CocoHttp *http)
{
	return http->epfd;
}

/*
 * The worker admits at most max_host_connections requests per receiver
 * itself (origin_queue.c), so libcurl never has to hold transfers back:
 * its own per-host limit would park them in a pending state whose waiting
 * time counts against the hook's timeout.  Keep enough idle connections
 * cached that every admitted request can reuse one.
 */
void
coco_http_set_limits(CocoHttp *http, int max_host_connections)
{
	const char *ca_file = cocohooks_ca_file ? cocohooks_ca_file : "";

	curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS,
					  (long) Max(max_host_connections * 16, 256));
	curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
					  (long) max_host_connections);
	curl_multi_setopt(http->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
	coco_h1_set_max_conns(http->h1, Max(max_host_connections * 16, 256));
	coco_h2_set_max_conns(http->h2, Max(max_host_connections * 16, 256));
	http->max_host_connections = max_host_connections;
	/* a new cocohooks.ca_file: every handle is set up again before its next use */
	if (http->ca_file == NULL || strcmp(http->ca_file, ca_file) != 0)
	{
		if (http->ca_file)
			pfree(http->ca_file);
		http->ca_file = MemoryContextStrdup(TopMemoryContext, ca_file);
		http->generation++;
	}
}

/*
 * The options every transfer of a handle shares, set once per handle (and
 * again after a reload changed one): a kept handle then only needs the
 * request's own options, which saves the worker a reset and some twenty
 * option calls per delivery.
 */
static void
configure_handle(CocoHttp *http, HttpRequest *req)
{
	CURL	   *e = req->easy;

	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, read_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_SHARE, http->share);
	/* HTTPS: certificate and host name always verified, TLS 1.2 at least */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
	/* trusted besides the system's CA directory, which libcurl still uses */
	if (http->ca_file && http->ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, http->ca_file);
	/* receivers are reached directly: no proxy, and no proxy variables read */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	/* every address is checked as it is connected to, and before reuse */
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_callback);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, req);
#if LIBCURL_VERSION_NUM >= 0x075000
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_callback);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, req);
#endif
	req->configured = http->generation;
	req->connect_only = false;
}

/*
 * Gives req a handle set up for this generation: a new one if its last
 * went with a TLS connection it opened.  False if libcurl could not make one.
 */
static bool
ready_handle(CocoHttp *http, HttpRequest *req)
{
	if (req->easy == NULL)
	{
		req->easy = curl_easy_init();
		if (req->easy == NULL)
			return false;
		req->configured = http->generation - 1;
	}
	if (req->configured != http->generation)
		configure_handle(http, req);
	return true;
}

static HttpRequest *
get_request(CocoHttp *http)
{
	HttpRequest *req = http->free_list;

	if (req)
		http->free_list = req->next_free;
	else
		req = MemoryContextAllocZero(TopMemoryContext, sizeof(HttpRequest));
	if (!ready_handle(http, req))
	{
		req->next_free = http->free_list;
		http->free_list = req;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	}
	return req;
}

/* The HTTP version to ask for, by cocohooks.http2 and the URL's scheme. */
static long
http_version_for(const char *url)
{
	bool		tls = pg_strncasecmp(url, "https://", 8) == 0;

	if (tls && cocohooks_http2 != COCO_HTTP2_OFF)
		return CURL_HTTP_VERSION_2TLS;
	if (!tls && cocohooks_http2 == COCO_HTTP2_PRIOR_KNOWLEDGE)
		return CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
	return CURL_HTTP_VERSION_1_1;
}

/*
 * Keeps a copy of url in req, for its head and connections to come, if it
 * is one we send ourselves.
 */
static bool
own_url(HttpRequest *req, const char *url)
{
	size_t		len = strlen(url);

	if (len >= req->url_size)
	{
		if (req->url)
			pfree(req->url);
		req->url_size = Max(len + 1, 256);
		req->url = MemoryContextAlloc(TopMemoryContext, req->url_size);
	}
	memcpy(req->url, url, len + 1);
	return coco_h1_parse_url(req->url, &req->h1.url);
}

static void
free_request(CocoHttp *http, HttpRequest *req)
{
	req->next_free = http->free_list;
	http->free_list = req;
}

/*
 * Has libcurl open a new connection for req's own HTTP/1.1 request: name
 * resolution, the network guard, TLS and the connect timeout stay
 * libcurl's, on a connection of its own (never one it keeps).  A probe
 * offers HTTP/2 too, to learn what an https receiver speaks
 * (tls_protocols.c); any other connection offers HTTP/1.1 alone.
 */
static bool
connect_own(CocoHttp *http, HttpRequest *req)
{
	CURL	   *e;
	long		left_ms = (long) ((req->h1.deadline - GetCurrentTimestamp()) / 1000);

	/* sent again: its handle may have gone with the connection it opened */
	if (!ready_handle(http, req))
		return false;
	e = req->easy;
	if (!req->connect_only)
	{
		curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 0L);
		req->connect_only = true;
	}
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
	/* a probe's ALPN offer is ours (tls_protocols.c); else libcurl's, HTTP/1.1 */
	curl_easy_setopt(e, CURLOPT_SSL_ENABLE_ALPN, req->probe ? 0L : 1L);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, req->probe ? coco_tls_offer_h2 : NULL);
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, Max(left_ms, 1L));
	if (curl_multi_add_handle(http->multi, e) != CURLM_OK)
		return false;
	req->connecting = true;
	return true;
}

/* What a request of our own carries, until it is done. */
static void
fill_own(HttpRequest *req, struct curl_slist *headers, const char *body,
		 size_t body_len, long timeout_ms)
{
	CocoH1Request *h1 = &req->h1;

	req->own = true;
	h1->headers = headers;
	h1->body = body;
	h1->body_len = body_len;
	h1->started = GetCurrentTimestamp();
	h1->deadline = h1->started + (TimestampTz) timeout_ms * 1000;
	h1->retried = false;
	h1->excerpt = req->response;
	h1->errbuf = req->errbuf;
}

/*
 * Sends a request of our own (http1_conn.c): on an idle connection kept
 * for the receiver, or on one libcurl opens for it.  False if libcurl
 * refused to open one.
 */
static bool
send_own(CocoHttp *http, HttpRequest *req)
{
	CocoH1Conn *conn = coco_h1_idle_conn(http->h1, req->h1.url.origin,
										 GetCurrentTimestamp());

	if (conn)
	{
		coco_h1_send(http->h1, conn, &req->h1);
		return true;
	}
	return connect_own(http, req);
}

/*
 * Starts req as a libcurl transfer.  False if libcurl refused it.
 */
static bool
start_transfer(CocoHttp *http, HttpRequest *req, const char *url,
			   struct curl_slist *headers, const char *body, size_t body_len,
			   long timeout_ms, long version)
{
	CURL	   *e = req->easy;

	req->own = false;
	if (req->connect_only)
	{
		curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 0L);
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_ENABLE_ALPN, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, NULL);
		req->connect_only = false;
	}
	/* the request's own options; the rest stay set on the handle */
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version);
	/* wait to multiplex on a connection being opened rather than open more */
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, version == CURL_HTTP_VERSION_1_1 ? 0L : 1L);
	return curl_multi_add_handle(http->multi, e) == CURLM_OK;
}

/* A request of our own is done. */
static void
h1_done(void *owner, CocoH1Request *h1, const CocoHttpResult *result)
{
	CocoHttp   *http = (CocoHttp *) owner;
	HttpRequest *req = (HttpRequest *) ((char *) h1 - offsetof(HttpRequest, h1));

	http->active--;
	http->done(req->arg, result);
	free_request(http, req);
}

/* A request that could not be started, from coco_http_drive(). */
static void
fail_request(CocoHttp *http, HttpRequest *req, const char *why)
{
	CocoHttpResult result = {0};

	result.error = why;
	h1_done(http, &req->h1, &result);
}

/* A TLS connection of ours is closed: libcurl closes it as its handle goes. */
static void
h1_release(void *owner, CURL *easy)
{
	CocoHttp   *http = (CocoHttp *) owner;

	curl_multi_remove_handle(http->multi, easy);
	curl_easy_cleanup(easy);
}

/* Its kept-alive connection died before any answer: once more, on a new one. */
static void
h1_reconnect(void *owner, CocoH1Request *h1)
{
	CocoHttp   *http = (CocoHttp *) owner;
	HttpRequest *req = (HttpRequest *) ((char *) h1 - offsetof(HttpRequest, h1));

	req->probe = false;
	if (!connect_own(http, req))
		fail_request(http, req, "could not start a new connection");
}

/* req waits for a connection to its receiver (tls_protocols.c's list). */
static void
push_waiting(CocoHttp *http, CocoTlsOrigin *origin, HttpRequest *req)
{
	dlist_push_tail(&origin->waiting, &req->wait_node);
	http->nwaiting++;
}

static HttpRequest *
pop_waiting(CocoHttp *http, CocoTlsOrigin *origin)
{
	http->nwaiting--;
	return dlist_container(HttpRequest, wait_node,
						   dlist_pop_head_node(&origin->waiting));
}

/*
 * Has libcurl open a connection offering HTTP/2 for req (a probe, if the
 * receiver's protocol is not known yet): ALPN then decides whose it is.
 */
static bool
connect_probe(CocoHttp *http, HttpRequest *req, CocoTlsOrigin *origin)
{
	req->probe = true;
	if (!connect_own(http, req))
	{
		req->probe = false;
		return false;
	}
	origin->connecting++;
	return true;
}

/*
 * Sends req to an HTTP/2 receiver: as a stream of a connection with room,
 * else on a new connection if its receiver has none being opened and
 * fewer than cocohooks.max_host_connections; else it waits for one of
 * these (h2_room).
 */
static bool
send_h2(CocoHttp *http, HttpRequest *req, CocoTlsOrigin *origin)
{
	CocoH2Conn *conn = coco_h2_conn_with_room(http->h2, origin->origin);

	if (conn)
	{
		coco_h2_send(http->h2, conn, &req->h1);
		return true;
	}
	if (origin->connecting == 0 &&
		coco_h2_conns(http->h2, origin->origin) < http->max_host_connections)
		return connect_probe(http, req, origin);
	push_waiting(http, origin, req);
	return true;
}

/* Requests waiting for an HTTP/2 receiver go out as far as there is room. */
static void
send_waiting_h2(CocoHttp *http, CocoTlsOrigin *origin)
{
	while (!dlist_is_empty(&origin->waiting))
	{
		CocoH2Conn *conn = coco_h2_conn_with_room(http->h2, origin->origin);
		HttpRequest *req;

		if (conn == NULL)
		{
			/* a new connection, for the first of them; the rest wait on */
			if (origin->connecting == 0 &&
				coco_h2_conns(http->h2, origin->origin) < http->max_host_connections)
			{
				req = pop_waiting(http, origin);
				if (!connect_probe(http, req, origin))
					fail_request(http, req, "could not start a new connection");
				continue;
			}
			break;
		}
		req = pop_waiting(http, origin);
		coco_h2_send(http->h2, conn, &req->h1);
	}
}

/*
 * A connection to an https receiver was made, or could not be: the
 * requests that waited for it go out, ours over HTTP/1.1 or HTTP/2 or
 * libcurl's; or, when it failed (failed set), they fail as it did.
 */
static void
release_waiting(CocoHttp *http, CocoTlsOrigin *origin, const CocoHttpResult *failed)
{
	if (!failed && origin->protocol == COCO_TLS_HTTP2)
	{
		send_waiting_h2(http, origin);
		return;
	}
	while (!dlist_is_empty(&origin->waiting))
	{
		HttpRequest *req = pop_waiting(http, origin);
		long		left_ms = (long) ((req->h1.deadline - GetCurrentTimestamp()) / 1000);

		if (failed)
		{
			http->active--;
			http->done(req->arg, failed);
			free_request(http, req);
		}
		else if (origin->protocol == COCO_TLS_HTTP1)
		{
			if (!send_own(http, req))
				fail_request(http, req, "could not start a new connection");
		}
		else if (!start_transfer(http, req, req->url, req->h1.headers, req->h1.body,
								 req->h1.body_len, Max(left_ms, 1L),
								 CURL_HTTP_VERSION_2TLS))
			fail_request(http, req, "could not start the transfer");
	}
}

/* A stream was refused, or its connection died unanswered: on another. */
static void
h2_reconnect(void *owner, CocoH1Request *h1)
{
	CocoHttp   *http = (CocoHttp *) owner;
	HttpRequest *req = (HttpRequest *) ((char *) h1 - offsetof(HttpRequest, h1));
	CocoTlsOrigin *origin = coco_tls_origin(h1->url.origin);

	if (origin == NULL || !send_h2(http, req, origin))
		fail_request(http, req, "could not start a new connection");
}

/* A stream ended or a connection closed: waiting requests may go now. */
static void
h2_room(void *owner, const char *origin_key)
{
	CocoHttp   *http = (CocoHttp *) owner;
	CocoTlsOrigin *origin;

	if (http->nwaiting == 0)
		return;
	origin = coco_tls_origin(origin_key);
	if (origin && origin->protocol == COCO_TLS_HTTP2 && !dlist_is_empty(&origin->waiting))
		send_waiting_h2(http, origin);
}

/*
 * Starts a POST.  headers and body must stay valid until the completion
 * callback runs for arg.  Returns false if libcurl refused the transfer
 * (the callback is then not called).
 */
bool
coco_http_post(CocoHttp *http, const char *url, struct curl_slist *headers,
			   const char *body, size_t body_len, long timeout_ms, void *arg)
{
	HttpRequest *req = get_request(http);
	long		version = http_version_for(url);
	bool		started;

	req->arg = arg;
	req->errbuf[0] = '\0';
	req->nsockets = 0;
	req->nblocked = 0;
	req->blocked[0] = '\0';
	req->body_read = 0;
	req->body_cut = false;
	req->own = false;
	req->probe = false;
	if (version == CURL_HTTP_VERSION_1_1 && own_url(req, url))
	{
		fill_own(req, headers, body, body_len, timeout_ms);
		started = send_own(http, req);
	}
	else if (version == CURL_HTTP_VERSION_2TLS && own_url(req, url))
	{
		/* https offering HTTP/2: ours if the receiver turns out to decline it */
		CocoTlsOrigin *origin = coco_tls_origin(req->h1.url.origin);

		fill_own(req, headers, body, body_len, timeout_ms);
		if (origin == NULL || origin->protocol == COCO_TLS_LIBCURL)
			started = start_transfer(http, req, url, headers, body, body_len,
									 timeout_ms, version);
		else if (origin->protocol == COCO_TLS_HTTP2)
			started = send_h2(http, req, origin);
		else if (origin->protocol == COCO_TLS_HTTP1)
			started = send_own(http, req);
		else if (origin->protocol == COCO_TLS_PROBING)
		{
			push_waiting(http, origin, req);
			started = true;
		}
		else
		{
			started = connect_probe(http, req, origin);
			if (started)
				origin->protocol = COCO_TLS_PROBING;
		}
	}
	else
		started = start_transfer(http, req, url, headers, body, body_len,
								 timeout_ms, version);
	if (!started)
	{
		free_request(http, req);
		return false;
	}
	http->active++;
	return true;
}

/*
 * Whether a transfer that failed while sending its body had its answer
 * already, whole: over HTTP/2 a receiver may answer before it has read the
 * request (RFC 9113 §8.1) and then reset the stream with NO_ERROR, which
 * libcurl 7.88 reports as a failed upload, or, when the body was larger
 * than the stream's window, waits on until the timeout.  The answer counts
 * when its length was announced and all of it came; otherwise it cannot be
 * told from one cut short, and the attempt fails.
 */
static bool
answered_early(HttpRequest *req, CURLcode code, long status)
{
	curl_off_t	length = -1;

	if (code != CURLE_HTTP2_STREAM && code != CURLE_SEND_ERROR &&
		code != CURLE_OPERATION_TIMEDOUT)
		return false;
	if (status < 200 || req->body_cut)
		return false;
	if (curl_easy_getinfo(req->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) != CURLE_OK)
		return false;
	return length >= 0 && (size_t) length == req->body_read;
}

/*
 * A connection offering HTTP/2 and HTTP/1.1 was made to an https
 * receiver: what did ALPN choose?  HTTP/2: the connection is ours, framed
 * by http2_conn.c, and req goes as its first stream.  HTTP/1.1: false,
 * and the connection becomes one of ours for HTTP/1.1 (adopt_connection).
 * Neither, or not known: the connection is closed, and req and the
 * receiver's other requests go as libcurl transfers.  Requests that
 * waited for the connection go out too.
 */
static bool
taken_by_alpn(CocoHttp *http, HttpRequest *req, curl_socket_t sock)
{
	CocoTlsOrigin *origin = coco_tls_origin(req->h1.url.origin);
	CocoTlsProtocol chose;
	char		byte;
	size_t		n = 0;
	CURLcode	rc;
	long		left_ms;

	/*
	 * Attaches the connection to the handle again; an HTTP/1.1 server says
	 * nothing first, an HTTP/2 one its SETTINGS, of which this may be the
	 * first byte.
	 */
	rc = curl_easy_recv(req->easy, &byte, 1, &n);
	chose = coco_tls_alpn(req->easy);
	req->probe = false;
	if (origin && origin->connecting > 0)
		origin->connecting--;
	if (rc == CURLE_AGAIN && chose == COCO_TLS_HTTP1)
	{
		if (origin)
		{
			origin->protocol = COCO_TLS_HTTP1;
			release_waiting(http, origin, NULL);
		}
		return false;
	}
	if ((rc == CURLE_AGAIN || rc == CURLE_OK) && chose == COCO_TLS_HTTP2 && origin)
	{
		CURL	   *easy = req->easy;
		CocoH2Conn *conn;

		set_watch(http, sock, WATCH_NONE);
		conn = coco_h2_adopt(http->h2, sock, easy, origin->origin, &byte, n);
		if (conn)
		{
			/* the handle stays in the multi handle with the TLS session */
			curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
			req->easy = NULL;
			req->connecting = false;
			origin->protocol = COCO_TLS_HTTP2;
			coco_h2_send(http->h2, conn, &req->h1);
			release_waiting(http, origin, NULL);
			return true;
		}
	}
	/* libcurl's, for good if ALPN could not be read; else the next request probes */
	if (origin)
		origin->protocol = (chose == COCO_TLS_LIBCURL) ? COCO_TLS_LIBCURL :
			(coco_h2_conns(http->h2, origin->origin) > 0 ? COCO_TLS_HTTP2 : COCO_TLS_UNKNOWN);
	req->connecting = false;
	curl_multi_remove_handle(http->multi, req->easy);
	left_ms = (long) ((req->h1.deadline - GetCurrentTimestamp()) / 1000);
	if (!start_transfer(http, req, req->url, req->h1.headers, req->h1.body,
						req->h1.body_len, Max(left_ms, 1L), CURL_HTTP_VERSION_2TLS))
		fail_request(http, req, "could not start the transfer");
	if (origin)
		release_waiting(http, origin, NULL);
	return true;
}

/*
 * libcurl has connected req's own connection: the socket becomes ours (a
 * duplicate, as libcurl closes its own when the handle is removed) and
 * the request goes out on it.  False, with errbuf set, if it could not be
 * taken over.
 */
static bool
adopt_connection(CocoHttp *http, HttpRequest *req)
{
	curl_socket_t sock = CURL_SOCKET_BAD;
	int			fd = -1;

	if (curl_easy_getinfo(req->easy, CURLINFO_ACTIVESOCKET, &sock) == CURLE_OK &&
		sock != CURL_SOCKET_BAD)
	{
		if (req->probe && taken_by_alpn(http, req, sock))
			return true;
		/* out of the epoll set while libcurl's descriptor still names it */
		set_watch(http, sock, WATCH_NONE);
		if (req->h1.url.tls)
		{
			/*
			 * The TLS session is libcurl's: the handle stays in the multi
			 * handle with the connection (removing it would close it), and
			 * the connection reads and writes through it.
			 */
			CURL	   *easy = req->easy;

			curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
			req->easy = NULL;
			req->connecting = false;
			coco_h1_send(http->h1, coco_h1_adopt(http->h1, sock, easy, req->h1.url.origin),
						 &req->h1);
			return true;
		}
		fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
	}
	if (fd < 0)
	{
		snprintf(req->errbuf, CURL_ERROR_SIZE,
				 "could not take over the connection: %s",
				 sock == CURL_SOCKET_BAD ? "no socket" : strerror(errno));
		return false;
	}
	req->connecting = false;
	curl_multi_remove_handle(http->multi, req->easy);
	coco_h1_send(http->h1, coco_h1_adopt(http->h1, fd, NULL, req->h1.url.origin), &req->h1);
	return true;
}

/* Calls the completion callback for every finished transfer. */
static void
collect_finished(CocoHttp *http)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(http->multi, &left)) != NULL)
	{
		HttpRequest *req;
		CocoHttpResult result = {0};
		double		total = 0;
		curl_off_t	retry_after = 0;
		long		version = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
		if (req == NULL)
			continue;			/* a TLS connection of ours: never finishes */
		if (req->connecting && msg->data.result == CURLE_OK && adopt_connection(http, req))
			continue;
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &result.status);
		curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME, &total);
		result.duration_ms = total * 1000.0;
		if (curl_easy_getinfo(req->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
			retry_after > 0)
			result.retry_after_s = (long) Min(retry_after, (curl_off_t) 86400);
		if (curl_easy_getinfo(req->easy, CURLINFO_HTTP_VERSION, &version) == CURLE_OK)
			result.multiplexed = (version == CURL_HTTP_VERSION_2_0 ||
								  version == CURL_HTTP_VERSION_3);
		result.response = req->response;
		result.response_len = (int) Min(req->body_read, (size_t) COCO_RESPONSE_EXCERPT);
		if (msg->data.result == CURLE_WRITE_ERROR && req->body_cut)
		{
			/* a complete answer whose body we would not read to the end */
		}
		else if (answered_early(req, msg->data.result, result.status))
		{
			/* the receiver answered, then stopped the upload: its answer stands */
		}
		else if (msg->data.result != CURLE_OK)
		{
			result.error = req->errbuf[0] ? req->errbuf :
				curl_easy_strerror(msg->data.result);
			/* a response cut short is no response */
			result.status = 0;
			result.timed_out = (msg->data.result == CURLE_OPERATION_TIMEDOUT);
			if (req->nblocked > 0)
			{
				/* every address it tried was refused: retrying cannot help */
				result.error = req->blocked;
				result.blocked = true;
				result.permanent = (req->nblocked >= req->nsockets);
			}
		}
		if (req->connecting && msg->data.result == CURLE_OK)
		{
			result.status = 0;
			result.error = req->errbuf;
		}
		req->connecting = false;
		curl_multi_remove_handle(http->multi, req->easy);
		if (req->probe)
		{
			/* no connection: the requests that waited fail as the probe did */
			CocoTlsOrigin *origin = coco_tls_origin(req->h1.url.origin);

			req->probe = false;
			if (origin)
			{
				if (origin->connecting > 0)
					origin->connecting--;
				/* an HTTP/2 receiver with connections open stays one */
				if (coco_h2_conns(http->h2, origin->origin) == 0)
					origin->protocol = COCO_TLS_UNKNOWN;
				release_waiting(http, origin, &result);
			}
		}
		http->active--;
		http->done(req->arg, &result);
		free_request(http, req);
	}
}

/*
 * Lets libcurl act on every ready socket and on its timeout if due, then
 * reports finished transfers.  Never blocks.
 */
void
coco_http_drive(CocoHttp *http)
{
	struct epoll_event events[MAX_EPOLL_EVENTS];
	int			running;
	int			n;
	TimestampTz now = 0;

	/* streams started since the last round go out first */
	coco_h2_flush(http->h2);
	do
	{
		n = epoll_wait(http->epfd, events, MAX_EPOLL_EVENTS, 0);
		if (n > 0)
			now = GetCurrentTimestamp();
		for (int i = 0; i < n; i++)
		{
			int			flags = 0;

			if (coco_h2_owns_event(events[i].data.u64))
			{
				coco_h2_event(http->h2, events[i].data.u64, events[i].events, now);
				continue;
			}
			if (coco_h1_owns_event(events[i].data.u64))
			{
				coco_h1_event(http->h1, events[i].data.u64, events[i].events, now);
				continue;
			}

			if (events[i].events & EPOLLIN)
				flags |= CURL_CSELECT_IN;
			if (events[i].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (events[i].events & (EPOLLERR | EPOLLHUP))
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(http->multi, (curl_socket_t) (events[i].data.u64 >> 1),
									 flags, &running);
		}
	} while (n == MAX_EPOLL_EVENTS);

	if (now == 0)
		now = GetCurrentTimestamp();
	if (libcurl_timeout_ms(http, now) == 0)
	{
		http->timeout_ms = -1;
		curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	coco_h1_expire(http->h1, now);
	coco_h2_expire(http->h2, now);
	collect_finished(http);
	/* streams the round's completions started, and what nghttp2 answers */
	coco_h2_flush(http->h2);
	/* every event of the round was handled: closed connections can go */
	coco_h1_reap(http->h1);
	coco_h2_reap(http->h2);
}

/*
 * Writes the streams started since the last round, together: the worker
 * calls it before it waits.
 */
void
coco_http_flush(CocoHttp *http)
{
	coco_h2_flush(http->h2);
}

/* Milliseconds until libcurl's next timeout is due; -1 when none is set. */
static long
libcurl_timeout_ms(CocoHttp *http, TimestampTz now)
{
	long		elapsed;

	if (http->timeout_ms < 0)
		return -1;
	elapsed = (long) ((now - http->timer_set_at) / 1000);
	return Max(http->timeout_ms - elapsed, 0);
}

/* Milliseconds until a timeout is due; -1 when none is set. */
long
coco_http_timeout_ms(CocoHttp *http)
{
	TimestampTz now = GetCurrentTimestamp();
	long		timeout = libcurl_timeout_ms(http, now);
	long		h1_ms = coco_h1_timeout_ms(http->h1, now);
	long		h2_ms = coco_h2_timeout_ms(http->h2, now);

	if (h1_ms >= 0 && (timeout < 0 || h1_ms < timeout))
		timeout = h1_ms;
	if (h2_ms >= 0 && (timeout < 0 || h2_ms < timeout))
		timeout = h2_ms;
	return timeout;
}
