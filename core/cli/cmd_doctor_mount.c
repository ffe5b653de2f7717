/*
 * keyhole doctor: the secrets mount, read from /proc/self/mountinfo and
 * never by stat() on the mount point, which blocks for good when the
 * FUSE daemon hangs. keyholed (fusefs/fs.c) mounts with fsname and
 * subtype "keyhole" and the options checked below.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd_doctor.h"
#include "keyhole/confine.h"

#define MOUNTINFO "/proc/self/mountinfo"
#define FSTYPE "fuse.keyhole"
#define SOURCE "keyhole"

/* The per-mount options keyholed sets: no setuid, devices or programs. */
static const char *const mount_options[] = { "ro", "nosuid", "nodev",
					     "noexec", NULL };
/*
 * The FUSE options it sets: the kernel checks file modes, and users
 * other than root may open the files at all.
 */
static const char *const super_options[] = { "default_permissions",
					     "allow_other", NULL };

/* The fields of one mountinfo line that the check reads. */
struct mount_entry {
	char mount_point[4096];
	char options[512];
	char fstype[256];
	char source[256];
	char super_options[512];
};

/* Decodes the \NNN octal escapes that mountinfo uses for blanks. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
					(s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * Parses "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [TAGS...] - FSTYPE
 * SOURCE SUPER_OPTIONS" (proc(5)). Returns false for a line that does
 * not have that shape.
 */
static bool parse_entry(char *line, struct mount_entry *entry)
{
	char *save = NULL, *field;
	int index = 0;

	memset(entry, 0, sizeof(*entry));
	for (field = strtok_r(line, " \n", &save); field;
	     field = strtok_r(NULL, " \n", &save), index++) {
		if (index == 4)
			(void)snprintf(entry->mount_point,
				       sizeof(entry->mount_point), "%s", field);
		else if (index == 5)
			(void)snprintf(entry->options, sizeof(entry->options),
				       "%s", field);
		else if (index > 5 && strcmp(field, "-") == 0)
			break;
	}
	if (!field)
		return false;
	field = strtok_r(NULL, " \n", &save);
	(void)snprintf(entry->fstype, sizeof(entry->fstype), "%s",
		       field ? field : "");
	field = strtok_r(NULL, " \n", &save);
	(void)snprintf(entry->source, sizeof(entry->source), "%s",
		       field ? field : "");
	field = strtok_r(NULL, " \n", &save);
	(void)snprintf(entry->super_options, sizeof(entry->super_options),
		       "%s", field ? field : "");
	unescape(entry->mount_point);
	return true;
}

/*
 * Finds the mount on path. The last match wins, because a later mount
 * on the same path hides the earlier ones. Returns 1 when found, 0 when
 * not, -1 when mountinfo cannot be read.
 */
static int find_mount(const char *path, struct mount_entry *found)
{
	struct mount_entry entry;
	char *line = NULL;
	size_t cap = 0;
	FILE *file;
	int r = 0;

	file = fopen(MOUNTINFO, "re");
	if (!file)
		return -1;
	while (getline(&line, &cap, file) > 0) {
		if (parse_entry(line, &entry) &&
		    strcmp(entry.mount_point, path) == 0) {
			*found = entry;
			r = 1;
		}
	}
	free(line);
	(void)fclose(file);
	return r;
}

/* Returns the first of names missing from the comma list options, or NULL. */
static const char *missing_option(const char *options,
				  const char *const *names)
{
	for (; *names; names++) {
		size_t len = strlen(*names);
		const char *p = options;
		bool present = false;

		while (!present && (p = strstr(p, *names)) != NULL) {
			present = (p == options || p[-1] == ',') &&
				  (p[len] == ',' || p[len] == '\0');
			p += len;
		}
		if (!present)
			return *names;
	}
	return NULL;
}

/*
 * Reports whether confined logins keep reading the mount after a
 * restart of keyholed, which needs a directory that contains nothing
 * but the mount point for the profiles' rule.
 */
static void check_layout(struct kh_doctor *d)
{
	const char *path = d->config->secrets_mount;
	const char *slash = strrchr(path, '/');
	char rule[PATH_MAX], parent[PATH_MAX];
	struct stat st;

	/* keyholed creates a missing parent with the mount point alone in it. */
	if (slash && slash > path && (size_t)(slash - path) < sizeof(parent)) {
		memcpy(parent, path, (size_t)(slash - path));
		parent[slash - path] = '\0';
		if (lstat(parent, &st) < 0 && errno == ENOENT) {
			kh_doctor_pass(d, "mount layout", "%s does not exist "
				       "yet; keyholed creates it with only the "
				       "mount point in it", parent);
			return;
		}
	}
	if (kh_confine_secrets_rule_path(path, rule, sizeof(rule)) == 1) {
		kh_doctor_pass(d, "mount layout", "%s is alone in %s, which "
			       "confinement profiles name, so confined logins "
			       "keep it across restarts", path, rule);
		return;
	}
	kh_doctor_problem(d, KH_DOCTOR_WARN, "mount layout",
			  "secrets_mount shares its directory with other "
			  "entries, so a restart of keyholed cuts confined "
			  "logins off it until they log in again",
			  "set secrets_mount to a mount point alone in a "
			  "root-owned directory, such as "
			  "/run/keyhole/mnt/secrets, with /run/secrets a "
			  "symlink to it");
}

void kh_doctor_check_mount(struct kh_doctor *d)
{
	check_layout(d);
	const char *path = d->config->secrets_mount;
	char text[KH_DOCTOR_TEXT_MAX];
	struct mount_entry entry;
	const char *missing;
	int r;

	r = find_mount(path, &entry);
	if (r <= 0) {
		if (r < 0)
			(void)snprintf(text, sizeof(text), "cannot read "
				       MOUNTINFO ", so %s cannot be checked",
				       path);
		else
			(void)snprintf(text, sizeof(text), "%s is not mounted",
				       path);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "mount", text,
				  "systemctl start keyholed");
		return;
	}
	if (strcmp(entry.fstype, FSTYPE) != 0 ||
	    strcmp(entry.source, SOURCE) != 0) {
		(void)snprintf(text, sizeof(text), "%s holds a %s file system "
			       "from \"%s\", not keyholed's " FSTYPE, path,
			       entry.fstype, entry.source);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "mount", text,
				  "unmount it, then systemctl restart "
				  "keyholed");
		return;
	}

	missing = missing_option(entry.options, mount_options);
	if (!missing)
		missing = missing_option(entry.super_options, super_options);
	if (missing) {
		(void)snprintf(text, sizeof(text), "%s is mounted without "
			       "option %s (options %s, %s)", path, missing,
			       entry.options, entry.super_options);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "mount", text,
				  "systemctl restart keyholed, which mounts "
				  "with every option it needs");
		return;
	}
	kh_doctor_pass(d, "mount", "%s is keyholed's " FSTYPE " mount (%s, "
		       "%s)", path, entry.options, entry.super_options);
}
