/* SPDX-License-Identifier: MIT */
/**
 * @file
 * qorb.h: the umbrella header. Connector and resolver headers that pull in
 * foreign libraries (pg.h, redis.h, dns.h) are included on their own.
 */
#ifndef QORB_QORB_H
#define QORB_QORB_H

#include "common.h"
#include "connector.h"
#include "pool.h"
#include "resolver.h"
#include "static.h"
#include "stats.h"
#include <qorb/version.h>

#endif /* QORB_QORB_H */
