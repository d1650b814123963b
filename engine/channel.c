/* SPDX-License-Identifier: MIT */
/*
 * channel: channel name rules. The contract is in channel.h.
 */
#include "channel.h"

#include "ws_frame.h"

#include <string.h>

bool channel_name_valid(const char *name, size_t len)
{
    const unsigned char *u = (const unsigned char *)name;
    /* RFC 3629 §4 through ws_frame's validator, ending in UTF8_ACCEPT (nothing truncated). */
    if (len == 0 || len > CHANNEL_NAME_MAX || utf8_validate(UTF8_ACCEPT, u, len) != UTF8_ACCEPT)
        return false;
    /* As for room names: in valid UTF-8 every byte below 0x80 is a character of its own, and
     * C1 (U+0080..U+009F) is exactly C2 80..C2 9F. */
    for (size_t i = 0; i < len; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f || u[i] == '/')
            return false;
        if (u[i] == 0xc2 && u[i + 1] <= 0x9f)
            return false;
    }
    return true;
}

bool channel_is_private(const char *name, size_t len)
{
    return len > 0 && name[0] == '$';
}

bool channel_user_allowed(const char *name, size_t len, const char *user, size_t user_len)
{
    size_t hash = len;
    while (hash > 0 && name[hash - 1] != '#')
        hash--;
    if (hash == 0)
        return true; /* no '#' */
    if (user_len == 0)
        return false;
    /* Centrifugo: the users are the part after the last '#', split on ','. */
    for (size_t a = hash;;) {
        size_t b = a;
        while (b < len && name[b] != ',')
            b++;
        if (b - a == user_len && memcmp(name + a, user, user_len) == 0)
            return true;
        if (b == len)
            break;
        a = b + 1;
    }
    return false;
}

uint32_t channel_can_subscribe(const char *name, size_t len, const char *user, size_t user_len,
                               bool token_ok)
{
    if (!channel_name_valid(name, len))
        return 102;
    if (channel_is_private(name, len) && !token_ok)
        return 103;
    if (!channel_user_allowed(name, len, user, user_len))
        return 103;
    return 0;
}

uint32_t channel_can_use(const char *name, size_t len, const char *user, size_t user_len,
                         bool subscribed)
{
    if (!channel_name_valid(name, len))
        return 102;
    if (channel_is_private(name, len) && !subscribed)
        return 103;
    if (!channel_user_allowed(name, len, user, user_len))
        return 103;
    return 0;
}
