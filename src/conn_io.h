/*-------------------------------------------------------------------------
 *
 * conn_io.h
 *	  Socket work of the worker's own connections (HTTP/1.1 and HTTP/2):
 *	  writes and reads, through libcurl's handle over TLS; their epoll
 *	  registration; the address they are connected to.
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_CONN_IO_H
#define COCOHOOKS_CONN_IO_H

#include "postgres.h"

#include <sys/uio.h>

#include <curl/curl.h>

extern ssize_t coco_conn_write(int fd, CURL *easy, const struct iovec *iov,
							   int iovcnt, char *error);
extern ssize_t coco_conn_read(int fd, CURL *easy, char *buf, size_t len,
							  char *error);
extern int	coco_conn_peer(int fd, uint8 *addr);
extern void coco_conn_watch(int epfd, int fd, uint64 data, uint32 *watching,
							uint32 events);

#endif							/* COCOHOOKS_CONN_IO_H */
