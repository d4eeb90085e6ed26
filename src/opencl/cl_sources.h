/*
 * cl_sources.h - the table of embedded kernels_cl/ files. The table itself is
 * generated at build time by cmake/EmbedKernels.cmake.
 */
#ifndef NNCL_CL_SOURCES_H
#define NNCL_CL_SOURCES_H

#include <stddef.h>

typedef struct nncl__kernel_source {
    const char *name; /* file name without extension: "blas1", "common" */
    const char *text; /* NUL-terminated */
    size_t length;    /* strlen(text) */
} nncl__kernel_source;

extern const nncl__kernel_source nncl__kernel_sources[];
extern const size_t nncl__kernel_source_count;

#endif /* NNCL_CL_SOURCES_H */
