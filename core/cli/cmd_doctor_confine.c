/*
 * keyhole doctor: what the running kernel offers for confinement
 * (seccomp filters, the Landlock ABI) and whether each profile that
 * keyhole exec --confine and pam_keyhole may use loads and can apply.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cmd_doctor.h"
#include "keyhole/confine.h"

/* Landlock ABI 4 (Linux 6.7) added the TCP port rules that profiles use. */
#define LANDLOCK_ABI_NET 4

/*
 * PR_GET_SECCOMP fails with EINVAL on a kernel without seccomp, and
 * libseccomp's API level is 0 when it cannot install filters.
 */
static void check_seccomp(struct kh_doctor *d)
{
	int mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
	unsigned int api = seccomp_api_get();

	if (mode < 0 || api < 1) {
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "seccomp",
				  "this kernel cannot install seccomp filters",
				  "use a kernel built with "
				  "CONFIG_SECCOMP_FILTER");
		return;
	}
	kh_doctor_pass(d, "seccomp", "filters available (libseccomp API "
		       "level %u%s)", api,
		       mode == SECCOMP_MODE_FILTER ?
			       ", and doctor itself runs under a filter" : "");
}

static int check_landlock(struct kh_doctor *d)
{
	int abi = kh_confine_landlock_abi();
	char text[KH_DOCTOR_TEXT_MAX];

	if (abi == 0) {
		kh_doctor_problem(d, KH_DOCTOR_WARN, "landlock",
				  "Landlock is missing or disabled, so "
				  "profiles confine with seccomp only or "
				  "refuse to run",
				  "use Linux 5.13 or later with landlock in "
				  "the lsm= boot parameter");
	} else if (abi < LANDLOCK_ABI_NET) {
		(void)snprintf(text, sizeof(text), "ABI %d: TCP port rules "
			       "need ABI %d, so they are not enforced", abi,
			       LANDLOCK_ABI_NET);
		kh_doctor_problem(d, KH_DOCTOR_WARN, "landlock", text,
				  "use Linux 6.7 or later");
	} else {
		kh_doctor_pass(d, "landlock", "ABI %d", abi);
	}
	return abi;
}

/* Fills vars for the calling user, as keyhole confine show does. */
static void fill_vars(const struct kh_doctor *d, struct kh_confine_vars *vars)
{
	const struct passwd *pw = getpwuid(getuid());

	vars->uid = getuid();
	vars->home = pw ? pw->pw_dir : NULL;
	vars->permits_dir = d->config ? d->config->permits_dir :
					KH_PERMITS_DEFAULT;
	vars->secrets_mount = d->config ? d->config->secrets_mount :
					  KH_SECRETS_DEFAULT;
}

/* True when the profile's network section has a TCP port rule. */
static bool has_port_rules(const struct kh_confine_profile *profile)
{
	json_t *doc = kh_confine_to_json(profile);
	const json_t *network = json_object_get(doc, "network");
	bool ports = json_object_get(network, "tcp_connect") ||
		     json_object_get(network, "tcp_bind");

	json_decref(doc);
	return ports;
}

static void check_profile(struct kh_doctor *d, const char *dir,
			  const char *name, int abi)
{
	struct kh_confine_profile *profile = NULL;
	struct kh_confine_vars vars;
	struct kh_err err = { { 0 } };
	char check[64];

	(void)snprintf(check, sizeof(check), "confine %s", name);
	fill_vars(d, &vars);
	if (kh_confine_load(dir, name, &vars, &profile, &err) < 0) {
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, err.msg,
				  "correct %s/%s.json (see keyhole-confine(5))",
				  dir, name);
		return;
	}
	if (abi < LANDLOCK_ABI_NET && has_port_rules(profile))
		kh_doctor_problem(d, KH_DOCTOR_WARN, check,
				  "loads, but its TCP port rules need Landlock "
				  "ABI 4 and are not enforced here",
				  "use Linux 6.7 or later");
	else
		kh_doctor_pass(d, check, "loads");
	kh_confine_free(profile);
}

/* Profile names from dir: every NAME.json, built-in names included. */
static bool is_builtin(const char *name)
{
	for (size_t i = 0; kh_confine_builtin_names[i]; i++) {
		if (strcmp(kh_confine_builtin_names[i], name) == 0)
			return true;
	}
	return false;
}

static void check_profiles(struct kh_doctor *d, int abi)
{
	const char *dir = d->profile_dir ? d->profile_dir :
					   KH_CONFINE_DIR_DEFAULT;
	char name[KH_CONFINE_NAME_MAX + 1];
	const struct dirent *entry;
	DIR *dirp;

	for (size_t i = 0; kh_confine_builtin_names[i]; i++)
		check_profile(d, dir, kh_confine_builtin_names[i], abi);

	dirp = opendir(dir);
	if (!dirp)
		return;
	while ((entry = readdir(dirp)) != NULL) {
		size_t len = strlen(entry->d_name);

		if (len <= 5 || strcmp(entry->d_name + len - 5, ".json") != 0)
			continue;
		/* A name kh_confine_load rejects is reported by it. */
		(void)snprintf(name, sizeof(name), "%.*s", (int)(len - 5),
			       entry->d_name);
		if (len - 5 > KH_CONFINE_NAME_MAX || is_builtin(name))
			continue;
		check_profile(d, dir, name, abi);
	}
	(void)closedir(dirp);
}

void kh_doctor_check_confinement(struct kh_doctor *d)
{
	int abi;

	check_seccomp(d);
	abi = check_landlock(d);
	check_profiles(d, abi);
}
