/*
 * net.c — the address parser, printer and loopback test of net.h.
 *
 * The parser checks in the order a reader would: the shape (brackets, the colon), then the port,
 * then the address itself, and names the first thing wrong. It uses inet_pton, so what it takes
 * is exactly what the C library calls a numeric address of the family the brackets say.
 */
#include "util/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/num.h"

static int refuse(const char **why, const char *what)
{
    *why = what;
    return -1;
}

/* Find the host part and the port text of addr: "[host]:port" or "host:port". */
static int split(const char *addr, const char **host, size_t *hlen, const char **port,
                 const char **why)
{
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb)
            return refuse(why, "no ']' after the IPv6 address");
        if (rb[1] != ':')
            return refuse(why, "no ':PORT' after ']'");
        *host = addr + 1;
        *hlen = (size_t)(rb - *host);
        *port = rb + 2;
        return 0;
    }
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return refuse(why, "no ':PORT'");
    *host = addr;
    *hlen = (size_t)(colon - addr);
    *port = colon + 1;
    return 0;
}

static int parse_port(const char *s, bool port0, uint16_t *port, const char **why)
{
    uint64_t v;

    if (*s == '\0')
        return refuse(why, "empty port");
    if (!num_parse_u64(s, strlen(s), 5, &v) || v > 65535 || (v == 0 && !port0))
        return refuse(why, port0 ? "port is not a number in 0..65535"
                                 : "port is not a number in 1..65535");
    *port = (uint16_t)v;
    return 0;
}

/* host, NUL-terminated, and port into *ss: an IPv6 address if it came in brackets, else IPv4. */
static int fill(const char *host, bool bracketed, uint16_t port, struct sockaddr_storage *ss,
                socklen_t *len, const char **why)
{
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct in6_addr a6;

    memset(ss, 0, sizeof *ss);
    if (bracketed) {
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return refuse(why, "bad IPv6 address");
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof *s6;
        return 0;
    }
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return refuse(why, inet_pton(AF_INET6, host, &a6) == 1 ? "an IPv6 address goes in brackets"
                                                               : "bad IPv4 address");
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    *len = sizeof *s4;
    return 0;
}

int net_parse_addr(const char *addr, bool port0, struct sockaddr_storage *ss, socklen_t *len,
                   const char **why)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *hs, *ps;
    size_t hlen;
    uint16_t port;

    if (!addr)
        return refuse(why, "no address");
    if (split(addr, &hs, &hlen, &ps, why) < 0 || parse_port(ps, port0, &port, why) < 0)
        return -1;
    if (hlen == 0 || hlen >= sizeof host)
        return refuse(why, "bad IP address");
    memcpy(host, hs, hlen);
    host[hlen] = '\0';
    return fill(host, addr[0] == '[', port, ss, len, why);
}

int net_addr_name(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
        return 0;
    }
    return -1;
}

bool net_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}
