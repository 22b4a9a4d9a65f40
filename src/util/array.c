/*
 * array.c — the one array growth of array.h.
 */
#include "util/array.h"

#include <stdint.h>
#include <stdlib.h>

int arr_reserve(void **v, size_t *cap, size_t need, size_t elem)
{
    size_t c = *cap ? *cap : 8;
    void *nv;

    if (need <= *cap)
        return 0;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return -1;
        c *= 2;
    }
    if (elem && c > SIZE_MAX / elem)
        return -1;
    if (!(nv = realloc(*v, c * elem)))
        return -1;
    *v = nv;
    *cap = c;
    return 0;
}
