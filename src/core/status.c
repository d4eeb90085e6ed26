/*
 * status.c - names and descriptions of the status codes, generated from the
 * X-macro in nncl/status.h.
 */
#include "nncl/status.h"

const char *nncl_status_string(nncl_status status)
{
    switch (status) {
#define NNCL_STATUS_TEXT_(name, value, text)                                                       \
    case name:                                                                                     \
        return text;
        NNCL_STATUS_MAP(NNCL_STATUS_TEXT_)
#undef NNCL_STATUS_TEXT_
    }
    return "unknown status";
}

const char *nncl_status_name(nncl_status status)
{
    switch (status) {
#define NNCL_STATUS_NAME_(name, value, text)                                                       \
    case name:                                                                                     \
        return #name;
        NNCL_STATUS_MAP(NNCL_STATUS_NAME_)
#undef NNCL_STATUS_NAME_
    }
    return "NNCL_ERR_UNKNOWN";
}
