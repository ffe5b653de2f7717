/*
 * The profile structure behind struct kh_confine_profile and the steps
 * that kh_confine_apply runs, shared by confine_profile.c,
 * confine_seccomp.c, confine_landlock.c and confine_apply.c. Internal to
 * libkeyhole.
 */
#ifndef KEYHOLE_CONFINE_INTERNAL_H
#define KEYHOLE_CONFINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyhole/confine.h"

/* Maximum number of ports in each of network.tcp_connect and tcp_bind. */
#define CONFINE_PORTS_MAX 64

/* A growable list of unique strings, each malloc'd. */
struct confine_list {
	char **items;
	size_t count;
	size_t cap;
};

/* The filesystem lists, in the order of the profile's keys. */
enum confine_fs_class {
	CONFINE_FS_READ_EXEC,
	CONFINE_FS_READ,
	CONFINE_FS_READ_WRITE,
	CONFINE_FS_EXCLUDE,
	CONFINE_FS_CLASS_COUNT,
};

/* The profile keys of enum confine_fs_class, indexed by it. */
extern const char *const confine_fs_keys[CONFINE_FS_CLASS_COUNT];

/*
 * TCP ports for one Landlock network right. set distinguishes a list
 * given as [] (no port at all) from an absent one (not restricted).
 */
struct confine_ports {
	bool set;
	size_t count;
	uint16_t ports[CONFINE_PORTS_MAX];
};

struct kh_confine_profile {
	char name[KH_CONFINE_NAME_MAX + 1];
	char *description;
	bool dumpable;
	enum kh_landlock_missing landlock_missing;
	struct confine_list deny; /* syscalls beyond the fixed deny list */
	bool unix_only;
	struct confine_ports tcp_connect;
	struct confine_ports tcp_bind;
	/* Absolute paths or exclude patterns, after variable expansion. */
	struct confine_list fs[CONFINE_FS_CLASS_COUNT];
};

/*
 * Socket families that the seccomp filter lets through. The filter
 * allows AF_INET and AF_INET6 only when Landlock restricts their ports.
 */
enum confine_sockets {
	CONFINE_SOCKETS_ANY,      /* no socket rule */
	CONFINE_SOCKETS_UNIX,     /* AF_UNIX only */
	CONFINE_SOCKETS_UNIX_TCP, /* AF_UNIX, and TCP over AF_INET(6) */
	CONFINE_SOCKETS_NO_INET,  /* any family but AF_INET and AF_INET6 */
};

/* Adds a copy of item unless the list already has it. */
int confine_list_add(struct confine_list *list, const char *item);

bool confine_list_has(const struct confine_list *list, const char *item);

void confine_list_free(struct confine_list *list);

/* Calls fn for every name that the filter always denies with EPERM. */
void confine_seccomp_each_fixed(void (*fn)(const char *name, void *ctx),
				void *ctx);

/* Descriptions of the argument rules and ENOSYS rules, NULL-terminated. */
extern const char *const confine_seccomp_arg_rules[];
extern const char *const confine_seccomp_enosys[];

/*
 * Loads every built-in profile and reports each one that fails, such as
 * for a syscall name that does not resolve. Returns the failure count.
 */
int confine_check_builtin_names(kh_err_report_fn report, void *ctx);

/*
 * Builds and loads the seccomp filter for profile. Adds the number of
 * rules to *rules. Returns 0 or a negative errno with err set.
 */
int confine_seccomp_load(const struct kh_confine_profile *profile,
			 enum confine_sockets sockets, size_t *rules,
			 struct kh_err *err);

/*
 * Builds the Landlock ruleset for profile at ABI abi (>= 1) and
 * restricts the calling thread with it. Sets *net_rules when TCP port
 * rules were added. Returns 0 or a negative errno with err set.
 */
int confine_landlock_restrict(const struct kh_confine_profile *profile,
			      int abi, bool *net_rules, struct kh_err *err);

#endif
