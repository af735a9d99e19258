/*-------------------------------------------------------------------------
 *
 * network_guard.c
 *	  Which addresses deliveries may connect to (cocohooks.allowed_networks).
 *
 * A table owner registers hook URLs, and the worker, running as the
 * server, POSTs to them: without a guard any tenant could reach the
 * server's own network (loopback, private ranges, a cloud's metadata
 * service at 169.254.169.254).  So a delivery connects only to a public
 * address, or to one inside a range the superuser allowed.
 *
 * The check is made on the address a socket is about to connect to (the
 * HTTP client calls it from libcurl's open-socket callback, for every
 * address a host name resolved to, and again before a kept-alive
 * connection is reused), so no DNS answer can slip past it.  register_hook
 * also refuses a literal IP address that is not allowed.
 *
 * IPv4 addresses mapped or embedded in IPv6 are never public, and only an
 * IPv6 range allows them (as inet's <<= has it: ::ffff:127.0.0.1 is not
 * inside 127.0.0.0/8), so allowing an IPv4 range lets no IPv6 spelling of
 * its addresses through.
 *
 * Runs in: every process that loads the library (the setting, parsed at
 * each reload); the checks in backends (register_hook, hook_args.c) and
 * in the worker (libcurl's callbacks, http_client.c).
 *
 * Invariants:
 *	- the checks allocate nothing and never raise an error: they run inside
 *	  libcurl's callbacks;
 *	- the parsed ranges are the setting's extra, made by the check hook and
 *	  owned by the GUC machinery: nothing else frees or changes them;
 *	- a bad value is refused by the check hook (GUC_check_errdetail), and
 *	  the ranges in force stay.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "utils/guc.h"

#include "network_guard.h"
#include "pg_compat.h"

typedef struct AllowedRange
{
	int			family;			/* AF_INET or AF_INET6 */
	int			prefix;			/* bits */
	uint8		addr[16];		/* network address, host bits cleared */
} AllowedRange;

typedef struct AllowedList
{
	int			n;
	AllowedRange ranges[FLEXIBLE_ARRAY_MEMBER];
} AllowedList;

static char *cocohooks_allowed_networks = NULL;
static const AllowedList *allowed = NULL;

/* Non-public IPv4 ranges, and what they are called in messages. */
static const struct
{
	uint8		net[4];
	int			prefix;
	const char *what;
}			ipv4_special[] =
{
	{{0, 0, 0, 0}, 8, "an unspecified (\"this network\") address"},
	{{10, 0, 0, 0}, 8, "a private address"},
	{{100, 64, 0, 0}, 10, "a shared (carrier-grade NAT) address"},
	{{127, 0, 0, 0}, 8, "a loopback address"},
	{{169, 254, 0, 0}, 16, "a link-local address"},
	{{172, 16, 0, 0}, 12, "a private address"},
	{{192, 0, 0, 0}, 24, "a reserved address"},
	{{192, 0, 2, 0}, 24, "a documentation address"},
	{{192, 168, 0, 0}, 16, "a private address"},
	{{198, 18, 0, 0}, 15, "a benchmarking address"},
	{{198, 51, 100, 0}, 24, "a documentation address"},
	{{203, 0, 113, 0}, 24, "a documentation address"},
	{{224, 0, 0, 0}, 4, "a multicast address"},
	{{255, 255, 255, 255}, 32, "the broadcast address"},
	{{240, 0, 0, 0}, 4, "a reserved address"},
};

/* Non-public IPv6 ranges; anything outside 2000::/3 is not public either. */
static const struct
{
	uint8		net[16];
	int			prefix;
	const char *what;
}			ipv6_special[] =
{
	{{0}, 128, "the unspecified address"},
	{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "a loopback address"},
	{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, "an IPv4-mapped address"},
	{{0}, 96, "an IPv4-compatible address"},
	{{0, 0x64, 0xff, 0x9b}, 96, "an IPv4-embedded (NAT64) address"},
	{{0, 0x64, 0xff, 0x9b, 0, 1}, 48, "an IPv4-embedded (NAT64) address"},
	{{0x20, 0x01, 0, 0}, 32, "an IPv4-embedded (Teredo) address"},
	{{0x20, 0x01, 0x0d, 0xb8}, 32, "a documentation address"},
	{{0x20, 0x01, 0x00, 0x00}, 23, "a reserved (IETF protocol assignment) address"},
	{{0x20, 0x02}, 16, "an IPv4-embedded (6to4) address"},
	{{0xfc}, 7, "a unique-local address"},
	{{0xfe, 0x80}, 10, "a link-local address"},
	{{0xfe, 0xc0}, 10, "a site-local address"},
	{{0xff}, 8, "a multicast address"},
};

/* True if the first prefix bits of a and b are equal. */
static bool
prefix_match(const uint8 *a, const uint8 *b, int prefix)
{
	int			bytes = prefix / 8;
	int			bits = prefix % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	return ((a[bytes] ^ b[bytes]) & (uint8) (0xff << (8 - bits))) == 0;
}

static bool
in_allowed(int family, const uint8 *addr)
{
	if (allowed == NULL)
		return false;
	for (int i = 0; i < allowed->n; i++)
	{
		const AllowedRange *r = &allowed->ranges[i];

		if (r->family == family && prefix_match(addr, r->addr, r->prefix))
			return true;
	}
	return false;
}

/* What kind of non-public IPv4 address this is, or NULL if public. */
static const char *
ipv4_kind(const uint8 *a)
{
	for (size_t i = 0; i < lengthof(ipv4_special); i++)
		if (prefix_match(a, ipv4_special[i].net, ipv4_special[i].prefix))
			return ipv4_special[i].what;
	return NULL;
}

static const char *
ipv6_kind(const uint8 *a)
{
	for (size_t i = 0; i < lengthof(ipv6_special); i++)
		if (prefix_match(a, ipv6_special[i].net, ipv6_special[i].prefix))
			return ipv6_special[i].what;
	if ((a[0] & 0xe0) != 0x20)
		return "a reserved address";	/* not global unicast (2000::/3) */
	return NULL;
}

/*
 * Whether a delivery may connect to this address (4 or 16 bytes in network
 * order).  When it may not, *why says what kind of address it is.
 */
bool
coco_address_allowed(int family, const uint8 *addr, const char **why)
{
	const char *kind;

	*why = NULL;
	if (family == AF_INET)
	{
		kind = ipv4_kind(addr);
		if (kind == NULL || in_allowed(AF_INET, addr))
			return true;
	}
	else if (family == AF_INET6)
	{
		kind = ipv6_kind(addr);
		if (kind == NULL || in_allowed(AF_INET6, addr))
			return true;
	}
	else
		kind = "not an IP address";
	*why = kind;
	return false;
}

/* The same for a socket address; text gets the address as text. */
bool
coco_sockaddr_allowed(const struct sockaddr *sa, char *text, Size textlen,
					  const char **why)
{
	const uint8 *addr;

	if (sa->sa_family == AF_INET)
		addr = (const uint8 *) &((const struct sockaddr_in *) sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		addr = (const uint8 *) &((const struct sockaddr_in6 *) sa)->sin6_addr;
	else
	{
		strlcpy(text, "(not an IP address)", textlen);
		*why = "not an IP address";
		return false;
	}
	if (inet_ntop(sa->sa_family, addr, text, textlen) == NULL)
		strlcpy(text, "?", textlen);
	return coco_address_allowed(sa->sa_family, addr, why);
}

/*
 * Parses a literal address (an IPv6 one with or without brackets).
 * Returns its family, or 0 if it is not one.
 */
int
coco_parse_ip(const char *text, uint8 *addr)
{
	char		buf[INET6_ADDRSTRLEN + 2];
	size_t		len = strlen(text);

	if (inet_pton(AF_INET, text, addr) == 1)
		return AF_INET;
	if (len >= 2 && text[0] == '[' && text[len - 1] == ']' && len - 2 < sizeof(buf))
	{
		memcpy(buf, text + 1, len - 2);
		buf[len - 2] = '\0';
		text = buf;
	}
	if (inet_pton(AF_INET6, text, addr) == 1)
		return AF_INET6;
	return 0;
}

/*
 * GUC check hook: the setting is a list of ranges ("10.1.0.0/16",
 * "::1", "fd00::/8") separated by commas or white space.
 */
static bool
allowed_networks_check(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	char	   *tok;
	char	   *save = NULL;
	int			n = 0;
	AllowedList *list;

	copy = pstrdup(*newval ? *newval : "");
	list = (AllowedList *) guc_malloc(LOG, offsetof(AllowedList, ranges) +
									  sizeof(AllowedRange) * (strlen(copy) / 2 + 1));
	if (list == NULL)
		return false;
	for (tok = strtok_r(copy, ", \t\n\r", &save); tok != NULL;
		 tok = strtok_r(NULL, ", \t\n\r", &save))
	{
		AllowedRange *r = &list->ranges[n];
		char	   *slash = strchr(tok, '/');
		int			maxbits;
		int			bytes;

		if (slash)
			*slash = '\0';
		memset(r->addr, 0, sizeof(r->addr));
		r->family = coco_parse_ip(tok, r->addr);
		if (r->family == 0)
		{
			GUC_check_errdetail("\"%s\" is not an IP address.", tok);
			goto fail;
		}
		maxbits = r->family == AF_INET ? 32 : 128;
		r->prefix = maxbits;
		if (slash)
		{
			char	   *end;
			long		bits = strtol(slash + 1, &end, 10);

			if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > maxbits)
			{
				GUC_check_errdetail("\"%s/%s\" has an invalid prefix length; it must be between 0 and %d.",
									tok, slash + 1, maxbits);
				goto fail;
			}
			r->prefix = (int) bits;
		}
		/* clear the host bits, as the inet type's network() would */
		bytes = r->prefix / 8;
		if (r->prefix % 8)
			r->addr[bytes++] &= (uint8) (0xff << (8 - r->prefix % 8));
		memset(r->addr + bytes, 0, sizeof(r->addr) - bytes);
		n++;
	}
	list->n = n;
	pfree(copy);
	*extra = list;
	return true;

fail:
	pfree(copy);
	guc_free(list);
	return false;
}

static void
allowed_networks_assign(const char *newval, void *extra)
{
	allowed = (const AllowedList *) extra;
}

/* cocohooks.allowed_networks, parsed by the hooks above */
void
coco_network_guard_define_setting(void)
{
	DefineCustomStringVariable("cocohooks.allowed_networks",
							   "Non-public networks deliveries may connect to.",
							   "A list of CIDR ranges, such as \"127.0.0.0/8, ::1\". Deliveries connect only to public addresses and to addresses inside these ranges.",
							   &cocohooks_allowed_networks,
							   "",
							   PGC_SIGHUP,
							   /* which internal networks are allowed is not for tenants to see */
							   GUC_LIST_INPUT | GUC_SUPERUSER_ONLY,
							   allowed_networks_check,
							   allowed_networks_assign,
							   NULL);
}
