/* Umbrella header for libkeyhole. */
#ifndef KEYHOLE_KEYHOLE_H
#define KEYHOLE_KEYHOLE_H

#define KH_VERSION "0.1.0"

#include "keyhole/action.h"
#include "keyhole/backend.h"
#include "keyhole/canon.h"
#include "keyhole/config.h"
#include "keyhole/confine.h"
#include "keyhole/dpr.h"
#include "keyhole/error.h"
#include "keyhole/key.h"
#include "keyhole/ledger.h"
#include "keyhole/permit.h"
#include "keyhole/policy.h"

#endif
