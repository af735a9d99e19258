/*-------------------------------------------------------------------------
 *
 * network_guard.h
 *	  Which addresses deliveries may connect to (cocohooks.allowed_networks).
 *
 *-------------------------------------------------------------------------
 */
#ifndef COCOHOOKS_NETWORK_GUARD_H
#define COCOHOOKS_NETWORK_GUARD_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "utils/guc.h"

extern char *cocohooks_allowed_networks;

extern bool coco_address_allowed(int family, const uint8 *addr, const char **why);
extern bool coco_sockaddr_allowed(const struct sockaddr *sa, char *text,
								  Size textlen, const char **why);
extern int	coco_parse_ip(const char *text, uint8 *addr);
extern bool coco_allowed_networks_check(char **newval, void **extra,
										GucSource source);
extern void coco_allowed_networks_assign(const char *newval, void *extra);

#endif							/* COCOHOOKS_NETWORK_GUARD_H */
