/*
 * A module built for a later backend ABI: the loader must reject it by
 * its abi_version before it touches any other member.
 */
#include "keyhole/backend_module.h"

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION + 1,
	.type = "abi2",
};
