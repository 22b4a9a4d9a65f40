/*
 * dlist.h — an intrusive doubly linked list whose links are fields of the element, named by the
 * caller (one element may be on several lists: kvs-server's connections are on their loop's
 * list, and on its holding or waiting list). head is an lvalue of the element pointer type.
 */
#ifndef KVS_UTIL_DLIST_H
#define KVS_UTIL_DLIST_H

#include <stddef.h>

/* Put n first on the list at head. */
#define DLIST_PUSH(head, n, prev, next)                                                        \
    do {                                                                                       \
        (n)->prev = NULL;                                                                      \
        (n)->next = (head);                                                                    \
        if (head)                                                                              \
            (head)->prev = (n);                                                                \
        (head) = (n);                                                                          \
    } while (0)

/* Take n off the list at head (it must be on it). */
#define DLIST_UNLINK(head, n, prev, next)                                                      \
    do {                                                                                       \
        if ((n)->prev)                                                                         \
            (n)->prev->next = (n)->next;                                                       \
        else                                                                                   \
            (head) = (n)->next;                                                                \
        if ((n)->next)                                                                         \
            (n)->next->prev = (n)->prev;                                                       \
    } while (0)

#endif
