/*
 * nncl.h - the umbrella header of nncl, a neural-network training library
 * whose layers run as OpenCL kernels, with a plain-C reference backend that
 * checks every result.
 *
 * Conventions shared by every header:
 *   - Every function that can fail returns nncl_status and hands objects back
 *     through OUT pointers. The few infallible accessors (status strings, the
 *     last error, element counts) return their value directly.
 *   - Public names are nncl_<module>_<verb>; macros are NNCL_*.
 *   - Opaque handles (nncl_context, nncl_buffer) hold device resources; open
 *     structs (nncl_tensor, option structs) are values.
 */
#ifndef NNCL_H
#define NNCL_H

#define NNCL_VERSION_MAJOR 0
#define NNCL_VERSION_MINOR 1
#define NNCL_VERSION_PATCH 0

#include "nncl/status.h"
#include "nncl/context.h"
#include "nncl/tensor.h"
#include "nncl/ops.h"
#include "nncl/layer.h"
#include "nncl/loss.h"
#include "nncl/data.h"
#include "nncl/network.h"
#include "nncl/spec.h"
#include "nncl/checkpoint.h"

#endif /* NNCL_H */
