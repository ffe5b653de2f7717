/*
 * The module's own config file, /etc/keyhole/pam_keyhole.conf. A
 * pam-auth-update profile fixes the module line for every service, so
 * settings that an administrator changes during a rollout (fail=, the
 * agent group) live in this file instead, the way pam_faillock keeps
 * faillock.conf. Each line is "key = value", "debug", a comment or
 * blank; the keys are the module arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>

#include "pam_internal.h"

/* Upper bound on the file size: a real config has a few lines. */
#define CONF_MAX_BYTES (64 * 1024)

static const char *const conf_keys[] = {
	"user", "group", "profile", "profile_dir", "socket", "fail", NULL,
};

static bool conf_key_known(const char *key)
{
	for (size_t i = 0; conf_keys[i]; i++) {
		if (strcmp(conf_keys[i], key) == 0)
			return true;
	}
	return false;
}

/*
 * The file decides which accounts are confined and whether a failure
 * locks them out, so only root may be able to change it.
 */
static int conf_check_owner(pam_handle_t *pamh, const char *path,
			    const struct stat *st)
{
	if (!S_ISREG(st->st_mode)) {
		pam_syslog(pamh, LOG_ERR, "%s is not a regular file", path);
		return -EINVAL;
	}
	if (st->st_uid != 0 || (st->st_mode & 022) != 0) {
		pam_syslog(pamh, LOG_ERR, "%s must be owned by root and not "
			   "group- or world-writable: chown root %s; chmod "
			   "go-w %s", path, path, path);
		return -EPERM;
	}
	if (st->st_size > CONF_MAX_BYTES) {
		pam_syslog(pamh, LOG_ERR, "%s is larger than %d bytes", path,
			   CONF_MAX_BYTES);
		return -EFBIG;
	}
	return 0;
}

/*
 * Rejects a NUL byte, because the parse would stop there and drop the
 * lines after it, such as the one that names the agent accounts.
 */
static int conf_check_text(pam_handle_t *pamh, const char *path,
			   char **text, size_t size)
{
	const char *nul = memchr(*text, '\0', size);
	unsigned lineno = 1;

	if (!nul)
		return 0;
	for (const char *p = *text; p < nul; p++)
		lineno += *p == '\n';
	pam_syslog(pamh, LOG_ERR, "%s:%u: contains a NUL byte: the file "
		   "must be text", path, lineno);
	free(*text);
	*text = NULL;
	return -EINVAL;
}

static int conf_read_fd(pam_handle_t *pamh, int fd, const char *path,
			size_t size, char **text)
{
	size_t done = 0;

	*text = malloc(size + 1);
	if (!*text)
		return -ENOMEM;
	while (done < size) {
		ssize_t n = read(fd, *text + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			pam_syslog(pamh, LOG_ERR, "cannot read %s: %s", path,
				   n < 0 ? strerror(errno) : "short read");
			free(*text);
			*text = NULL;
			return -EIO;
		}
		done += (size_t)n;
	}
	(*text)[size] = '\0';
	return conf_check_text(pamh, path, text, size);
}

/*
 * Reads path into a malloc'd string. A missing file is not an error
 * when it is the default path: *text stays NULL and the module line
 * alone configures the module.
 */
static int conf_load(pam_handle_t *pamh, const char *path, bool required,
		     char **text)
{
	struct stat st;
	int fd, r;

	*text = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT && !required)
		return 0;
	if (fd < 0) {
		pam_syslog(pamh, LOG_ERR, "cannot open %s: %s", path,
			   strerror(errno));
		return -errno;
	}
	r = fstat(fd, &st) < 0 ? -errno : conf_check_owner(pamh, path, &st);
	if (r == 0)
		r = conf_read_fd(pamh, fd, path, (size_t)st.st_size, text);
	close(fd);
	return r;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
			   end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/*
 * Rewrites one line in place as "key=value" (or "debug"), the form of a
 * module argument. Returns the entry, NULL for a blank or comment line,
 * or sets *bad for a line that is neither.
 */
static char *conf_entry(pam_handle_t *pamh, const char *path,
			unsigned lineno, char *line, bool *bad)
{
	char *eq, *key, *value;

	line = trim(line);
	if (*line == '\0' || *line == '#')
		return NULL;
	if (strcmp(line, "debug") == 0)
		return line;
	eq = strchr(line, '=');
	if (!eq) {
		pam_syslog(pamh, LOG_ERR, "%s:%u: expected \"key = value\", "
			   "got \"%s\"", path, lineno, line);
		*bad = true;
		return NULL;
	}
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (!conf_key_known(key)) {
		pam_syslog(pamh, LOG_ERR, "%s:%u: unknown key \"%s\": use "
			   "user, group, profile, profile_dir, socket, fail "
			   "or debug", path, lineno, key);
		*bad = true;
		return NULL;
	}
	memmove(line + strlen(key) + 1, value, strlen(value) + 1);
	line[strlen(key)] = '=';
	return line;
}

/*
 * Splits text into entries, in place. conf->entries points into text,
 * which conf takes over. Returns 0, or -EINVAL after logging each bad
 * line with its number.
 */
static int conf_split(pam_handle_t *pamh, const char *path, char *text,
		      struct kh_pam_conf *conf)
{
	unsigned lineno = 0;
	bool bad = false;
	char *line = text, *next;

	conf->text = text;
	for (; line && *line; line = next) {
		char *entry;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		entry = conf_entry(pamh, path, lineno, line, &bad);
		if (!entry)
			continue;
		if (conf->count == KH_PAM_CONF_MAX_ENTRIES) {
			pam_syslog(pamh, LOG_ERR, "%s:%u: more than %d "
				   "settings", path, lineno,
				   KH_PAM_CONF_MAX_ENTRIES);
			return -EINVAL;
		}
		conf->entries[conf->count++] = entry;
	}
	return bad ? -EINVAL : 0;
}

int kh_pam_conf_read(pam_handle_t *pamh, const char *path, bool required,
		     struct kh_pam_conf *conf)
{
	char *text;
	int r;

	memset(conf, 0, sizeof(*conf));
	r = conf_load(pamh, path, required, &text);
	if (r < 0 || !text)
		return r;
	return conf_split(pamh, path, text, conf);
}

void kh_pam_conf_free(struct kh_pam_conf *conf)
{
	free(conf->text);
	memset(conf, 0, sizeof(*conf));
}
