/*-------------------------------------------------------------------------
 *
 * conn_io.c
 *	  Socket work of the worker's own connections (HTTP/1.1 and HTTP/2):
 *	  writes and reads, through libcurl's handle over TLS; their epoll
 *	  registration; the address they are connected to.
 *
 * libcurl opened the connection (http_client.c); a plain one is then a
 * socket of ours, while over TLS the session stays libcurl's and bytes go
 * through curl_easy_send() and curl_easy_recv() on the handle that made
 * it.  Both kinds look alike to http1_conn.c and http2_conn.c: the bytes
 * written or read, or -1 with errno EAGAIN (nothing now) or another
 * (error, CURL_ERROR_SIZE bytes, says why, in libcurl's words).  Their
 * sockets share the worker's epoll set, each event carrying the
 * connection's own data (a pointer, tagged by its kind).
 *
 * Runs in: the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "conn_io.h"

/*
 * Writes what the connection takes of iov (over TLS, of its first part
 * only: callers put a TLS connection's bytes in one buffer, one record).
 */
ssize_t
coco_conn_write(int fd, CURL *easy, const struct iovec *iov, int iovcnt,
				char *error)
{
	if (easy)
	{
		size_t		n = 0;
		CURLcode	rc = curl_easy_send(easy, iov[0].iov_base, iov[0].iov_len, &n);

		if (rc == CURLE_AGAIN)
		{
			errno = EAGAIN;
			return -1;
		}
		if (rc != CURLE_OK)
		{
			snprintf(error, CURL_ERROR_SIZE, "Send failure: %s",
					 curl_easy_strerror(rc));
			errno = EIO;
			return -1;
		}
		return (ssize_t) n;
	}
	else
	{
		struct msghdr msg = {0};
		ssize_t		n;

		msg.msg_iov = (struct iovec *) iov;
		msg.msg_iovlen = iovcnt;
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		{
			int			err = errno;

			snprintf(error, CURL_ERROR_SIZE, "Send failure: %s", strerror(err));
			errno = err;
		}
		return n;
	}
}

/* Reads into buf: the bytes read, 0 at the end of the stream, or -1. */
ssize_t
coco_conn_read(int fd, CURL *easy, char *buf, size_t len, char *error)
{
	if (easy)
	{
		size_t		n = 0;
		CURLcode	rc = curl_easy_recv(easy, buf, len, &n);

		if (rc == CURLE_AGAIN)
		{
			errno = EAGAIN;
			return -1;
		}
		if (rc != CURLE_OK)
		{
			snprintf(error, CURL_ERROR_SIZE, "Recv failure: %s",
					 curl_easy_strerror(rc));
			errno = EIO;
			return -1;
		}
		return (ssize_t) n;
	}
	else
	{
		ssize_t		n;

		do
			n = recv(fd, buf, len, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		{
			int			err = errno;

			snprintf(error, CURL_ERROR_SIZE, "Recv failure: %s", strerror(err));
			errno = err;
		}
		return n;
	}
}

/*
 * Watches fd in epfd for events (data its event's data); *watching holds
 * what is registered, none (0) before the first call.
 */
void
coco_conn_watch(int epfd, int fd, uint64 data, uint32 *watching, uint32 events)
{
	struct epoll_event ev = {0};

	if (*watching == events)
		return;
	ev.events = events;
	ev.data.u64 = data;
	(void) epoll_ctl(epfd, *watching ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
	*watching = events;
}

/*
 * The address fd is connected to, for the network guard's check before
 * reuse: its family (0 if unknown) and, into addr, its 4 or 16 bytes.
 */
int
coco_conn_peer(int fd, uint8 *addr)
{
	struct sockaddr_storage peer;
	socklen_t	peer_len = sizeof(peer);

	if (getpeername(fd, (struct sockaddr *) &peer, &peer_len) != 0)
		return 0;
	if (peer.ss_family == AF_INET)
		memcpy(addr, &((struct sockaddr_in *) &peer)->sin_addr, 4);
	else if (peer.ss_family == AF_INET6)
		memcpy(addr, &((struct sockaddr_in6 *) &peer)->sin6_addr, 16);
	else
		return 0;
	return peer.ss_family;
}
