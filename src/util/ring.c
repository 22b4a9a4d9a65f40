/*
 * ring.c — the ring growth of ring.h, on top of arr_reserve (array.h).
 *
 * Growing at least doubles cap, so the elements that wrapped (fewer than the old cap) fit in
 * the new room just past the old end, without overlapping where they come from.
 */
#include "util/ring.h"

#include <string.h>

#include "util/array.h"
#include "util/invariant.h"

int ring_reserve(void **v, size_t *cap, size_t head, size_t len, size_t elem)
{
    size_t old = *cap, wrapped;

    KVS_ASSERT(len <= old && (old == 0 || head < old));
    if (len < old)
        return 0;
    if (arr_reserve(v, cap, len + 1, elem) < 0)
        return -1;
    wrapped = head + len > old ? head + len - old : 0;
    memcpy((char *)*v + old * elem, *v, wrapped * elem);
    return 0;
}
