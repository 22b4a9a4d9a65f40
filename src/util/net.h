/*
 * net.h — socket addresses as kvs writes them, "IPv4:PORT" and "[IPv6]:PORT", written once for
 * the server (--addr, the listening address, its peers) and the client library.
 *
 * The rules, strict so that an address means one thing: numeric only (no host names, no DNS);
 * an IPv6 address always in brackets (a bare "::1:4000" could be read two ways) and without a
 * scope ("%eth0"); an IPv4 address never in brackets; the port 1 to 5 decimal digits and nothing
 * else (no sign, no space), 0..65535. Port 0 means "a free port the kernel picks", which a
 * listener can ask for and a client cannot connect to, so each caller says whether it takes it.
 *
 * Names go the other way: "127.0.0.1:4000", "[::1]:4000" — the forms the parser reads back.
 * Loopback is 127.0.0.0/8, ::1 and the IPv4-mapped ::ffff:127.x.y.z (what an IPv6 socket that
 * also takes IPv4 sees a local client as): protected mode trusts these, and nothing else.
 */
#ifndef KVS_UTIL_NET_H
#define KVS_UTIL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Parse addr into *ss, with *len the size bind/connect take for it. port0: accept port 0 (a
 * listener's "any free port"); otherwise the port must be 1..65535. Returns 0, or -1 with *why
 * a static phrase saying what is wrong ("no ':PORT'", "bad IPv6 address", ...), for the caller
 * to put into its message along with addr (which may be NULL: "no address"). */
int net_parse_addr(const char *addr, bool port0, struct sockaddr_storage *ss, socklen_t *len,
                   const char **why);

/* Write sa as "IP:PORT" or "[IPv6]:PORT" into out[0, cap). -1, leaving out as it was, if sa is
 * neither IPv4 nor IPv6. INET6_ADDRSTRLEN + 8 bytes always suffice. */
int net_addr_name(const struct sockaddr *sa, char *out, size_t cap);

/* Is sa a loopback address (see above)? False for any other family. */
bool net_is_loopback(const struct sockaddr *sa);

#endif
