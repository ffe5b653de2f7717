/* A module of the current ABI whose required functions are missing. */
#include "keyhole/backend_module.h"

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION,
	.type = "noops",
};
