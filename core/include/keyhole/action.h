/*
 * Actions: what a permit is bound to. hA = SHA-256(JCS(action)), over
 * exactly the value that policy evaluates.
 *   {"type":"tool_call","tool":"stripe.charge","params":{...}}
 *   {"type":"exec","exe":"/usr/bin/curl","argv":["curl",...]}
 */
#ifndef KEYHOLE_ACTION_H
#define KEYHOLE_ACTION_H

#include <jansson.h>
#include <sys/types.h>

#include "keyhole/canon.h"
#include "keyhole/error.h"

/* Largest /proc/<pid>/cmdline read, in bytes. */
#define KH_ACTION_MAX_CMDLINE (128 * 1024)

/*
 * Checks an action's shape strictly: "type" is "tool_call" (keys type,
 * tool (non-empty string), params (object, optional)) or "exec" (keys
 * type, exe (absolute path), argv (non-empty array of strings)). Unknown
 * keys are rejected with their JSON path. tool, exe and argv must not
 * contain NUL bytes, and numbers must pass kh_json_check.
 */
int kh_action_validate(const json_t *action, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Builds the exec action for argv the way keyholed will see it. argv[0]
 * is looked up in PATH when it has no slash, by execvp rules, with
 * "/usr/local/bin:/usr/bin:/bin" when PATH is unset. Then realpath()
 * resolves the result, and argv is kept verbatim. Returns -ENOENT when the
 * command is not found, -EACCES when it is not an executable regular
 * file, -EILSEQ for an argument that is not UTF-8 and -E2BIG for a
 * command line longer than KH_ACTION_MAX_CMDLINE.
 */
int kh_action_from_argv(char *const argv[], json_t **out, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Builds the exec action of a running process from the kernel's view:
 * exe is readlink(/proc/<tgid>/exe), argv is /proc/<tgid>/cmdline split
 * at NULs. proc_dirfd is an open O_DIRECTORY fd on /proc/<tgid> (so that
 * a recycled pid cannot swap the process between the two reads), or -1
 * to open /proc/<tgid> here. Returns -ESRCH when the process is gone,
 * -ENOEXEC for a deleted, replaced or unreadable executable or a kernel
 * thread, and -E2BIG for a cmdline longer than KH_ACTION_MAX_CMDLINE
 * (a cut one could equal a shorter permitted command line).
 */
int kh_action_from_proc(pid_t tgid, int proc_dirfd, json_t **out,
			struct kh_err *err)
	__attribute__((warn_unused_result));

/* hA of an action (validated first). */
int kh_action_hash(const json_t *action, char hex[KH_HASH_HEX_LEN + 1],
		   struct kh_err *err)
	__attribute__((warn_unused_result));

#endif
