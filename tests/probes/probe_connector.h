/* SPDX-License-Identifier: MIT */
/*
 * probe_connector.h: the connector of the probe targets. It "connects" on
 * the next loop iteration without touching the network, and its
 * connections never need a recycle, so the targets can drive pools over
 * any backend address.
 */
#ifndef QORB_PROBE_CONNECTOR_H
#define QORB_PROBE_CONNECTOR_H

#include "qorb/qorb.h"

/* A new connector (qorb_connector_new), or NULL when out of memory. The
 * pool it is given to frees it. */
qorb_connector_t *probe_connector_new(void);

#endif /* QORB_PROBE_CONNECTOR_H */
