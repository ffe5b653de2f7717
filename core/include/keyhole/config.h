/*
 * keyhole.json, shared by keyholed and the keyhole CLI. Relative paths
 * resolve against the config file's directory.
 */
#ifndef KEYHOLE_CONFIG_H
#define KEYHOLE_CONFIG_H

#include <jansson.h>
#include <limits.h>

#include "keyhole/backend.h"
#include "keyhole/error.h"

#ifndef KH_SYSCONFDIR
#define KH_SYSCONFDIR "/etc"
#endif
#ifndef KH_RUNSTATEDIR
#define KH_RUNSTATEDIR "/run"
#endif

#define KH_CONFIG_DEFAULT KH_SYSCONFDIR "/keyhole/keyhole.json"
#define KH_SOCKET_DEFAULT KH_RUNSTATEDIR "/keyhole/broker.sock"
#define KH_PERMITS_DEFAULT KH_RUNSTATEDIR "/permits"
#define KH_SECRETS_DEFAULT KH_RUNSTATEDIR "/secrets"
#define KH_CREDSTORE_DEFAULT KH_SYSCONFDIR "/keyhole/credstore"

enum kh_policy_change {
	KH_POLICY_CHANGE_REJECT = 0, /* permits from an older hP are refused */
	KH_POLICY_CHANGE_HONOR = 1,  /* they stay valid until they expire */
};

/*
 * Parsed config. Every path is absolute. Required keys: tenant, env,
 * broker_id, permit_key, audit_key, policy, audit_dir. backends is the
 * "backends" object (new reference; may be an empty object). Loading
 * checks only each name and that each entry has a string "type", because
 * kh_backend_open checks the rest.
 */
struct kh_config {
	char path[PATH_MAX];
	char dir[PATH_MAX];
	char tenant[128];
	char env[64];
	char broker_id[128];
	char permit_key[PATH_MAX];
	char audit_key[PATH_MAX];
	char policy[PATH_MAX];
	char audit_dir[PATH_MAX];
	char socket[PATH_MAX];
	char permits_dir[PATH_MAX];
	char secrets_mount[PATH_MAX];
	char backend_dir[PATH_MAX];   /* backend modules, KH_BACKEND_DIR */
	/*
	 * Name of the group whose members may revoke any permit, "" when
	 * unset. Only the name is checked here: keyholed resolves it.
	 */
	char admin_group[64];
	enum kh_policy_change on_policy_change;
	json_t *backends;
	/* "federation": all "" when the section is absent. */
	char fed_issuer[512];
	char fed_key[PATH_MAX];
	char fed_retired_dir[PATH_MAX];
};

/*
 * Loads and strictly checks a config (unknown keys, wrong types,
 * missing required keys, relative-path resolution). Stops at the first
 * error: err then reads "<config path>:<line>: <JSON path>: <problem and
 * fix>", and a missing file or directory names how to create one.
 */
int kh_config_load(const char *path, struct kh_config **out,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Checks a config like kh_config_load but reports every error through
 * report (which may be NULL to only count them), each as
 * "<config path>:<line>: <JSON path>: <problem and fix>". Checking goes
 * on past an unknown key or a bad value to the next key. A JSON syntax
 * error stops it and counts as one error. Returns the number of errors
 * (0 for a valid config), or a negative errno when the file or its
 * directory cannot be read, after reporting that message too. The
 * policy file that the config names is not read: pass config->policy
 * to kh_policy_check_file for that.
 */
int kh_config_check(const char *path, kh_err_report_fn report, void *ctx)
	__attribute__((warn_unused_result));

void kh_config_free(struct kh_config *config);

/*
 * Public JWK path that goes with a private key path: "x.jwk" gives
 * "x.pub.jwk" (the layout keyhole keygen writes), and a path without the
 * ".jwk" suffix gets ".pub.jwk" appended. Returns -ENAMETOOLONG when the
 * result does not fit in size bytes.
 */
int kh_config_public_key_path(const char *private_path, char *out,
			      size_t size);

#endif
