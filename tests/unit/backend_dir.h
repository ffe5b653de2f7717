/*
 * Where unit tests load backend modules from: $KH_TEST_BACKEND_DIR,
 * which tests/run.sh sets, or else the backends/ directory beside the
 * directory of the test binary ($BUILD/tests/../backends).
 */
#ifndef KH_TEST_BACKEND_DIR_H
#define KH_TEST_BACKEND_DIR_H

#include "keyhole/backend.h"

const char *kh_test_backend_dir(void);

/* A backend env with only backend_dir set, for kh_backend_open. */
const struct kh_backend_env *kh_test_backend_env(void);

#endif
