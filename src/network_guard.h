/*-------------------------------------------------------------------------
 *
 * network_guard.h
 *	  Which addresses deliveries may connect to (cocohooks.allowed_networks).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_NETWORK_GUARD_H
#define COCOHOOKS_NETWORK_GUARD_H

#include "postgres.h"

#include <netinet/in.h>
#include <sys/socket.h>

extern bool coco_address_allowed(int family, const uint8 *addr, const char **why);
extern bool coco_sockaddr_allowed(const struct sockaddr *sa, char *text,
								  Size textlen, const char **why);
extern int	coco_parse_ip(const char *text, uint8 *addr);
extern void coco_network_guard_define_setting(void);

#endif							/* COCOHOOKS_NETWORK_GUARD_H */
