/*
 * The backend module loader: finds BACKEND_DIR/kh_backend_<type>.so for
 * the "type" in keyhole.json, checks who owns it, loads it through the
 * checked fd, checks its descriptor and configures named instances.
 *
 * A module stays loaded for the life of the process once it passed the
 * checks (the cache below), so that one .so is loaded once and no code
 * is unmapped while a thread may still run it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_internal.h"
#include "keyhole/backend.h"
#include "keyhole/backend_module.h"

/* Maximum length of a module type, which becomes part of a file name. */
#define TYPE_MAX 32

/*
 * One loaded module. fd stays open while the module is loaded: glibc
 * matches a dlopen name against the names of objects already loaded,
 * so a later module opened at the same /proc/self/fd/N would otherwise
 * be handed this one.
 */
struct module_entry {
	struct module_entry *next;
	char path[PATH_MAX];
	int fd;
	void *handle;
	const struct kh_backend_module *module;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct module_entry *cache;

const char *kh_backend_reason(int err)
{
	switch (err) {
	case KH_FETCH_AUTH_REFUSED:
		return "auth refused";
	case KH_FETCH_NOT_FOUND:
		return "not found";
	case KH_FETCH_THROTTLED:
		return "throttled";
	case KH_FETCH_TIMED_OUT:
		return "timed out";
	case KH_FETCH_TLS_FAILURE:
		return "TLS failure";
	case KH_FETCH_BAD_RESPONSE:
		return "bad response";
	case KH_FETCH_UNREACHABLE:
		return "unreachable";
	case KH_FETCH_SERVER_ERROR:
		return "server error";
	default:
		return "backend error";
	}
}

int kh_backend_name_is_valid(const char *name)
{
	size_t len;

	if (!name)
		return 0;
	len = strlen(name);
	if (len == 0 || len > KH_BACKEND_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* A type becomes a file name, so it is limited to [a-z0-9_]. */
static bool type_is_valid(const char *type)
{
	size_t len = strlen(type);

	if (len == 0 || len > TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = type[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

static int read_type(const json_t *conf, const char **type,
		     struct kh_err *err)
{
	const json_t *value = json_object_get(conf, "type");

	if (!json_is_string(value) ||
	    strlen(json_string_value(value)) != json_string_length(value)) {
		kh_err_set(err, "$.type: missing or not a string; set \"type\" "
				"to a backend type such as \"file\"");
		return -EINVAL;
	}
	*type = json_string_value(value);
	if (!type_is_valid(*type)) {
		kh_err_set(err, "$.type: \"%.64s\" is not a valid backend type; "
				"use 1 to %d characters from a-z 0-9 _",
			   *type, TYPE_MAX);
		return -EINVAL;
	}
	return 0;
}

/*
 * Rejects a module that someone other than root or us could replace or
 * change: its code runs inside the broker.
 */
static int check_module_file(int fd, const char *path, struct kh_err *err)
{
	struct stat st;
	uid_t euid = geteuid();

	if (fstat(fd, &st) < 0) {
		int r = -errno;

		kh_err_set(err, "cannot stat module %s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		kh_err_set(err, "module %s is not a regular file", path);
		return -EINVAL;
	}
	if (st.st_uid != 0 && st.st_uid != euid) {
		kh_err_set(err, "module %s is owned by uid %u; it must be owned "
				"by root or uid %u (chown root %s)",
			   path, (unsigned)st.st_uid, (unsigned)euid, path);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		kh_err_set(err, "module %s has mode %04o, which lets group or "
				"others change it; run \"chmod go-w %s\"",
			   path, (unsigned)(st.st_mode & 07777), path);
		return -EPERM;
	}
	return 0;
}

/* Opens the module file without following a symlink at its last step. */
static int open_module_file(const char *dir, const char *type,
			    const char *path, struct kh_err *err)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd >= 0)
		return fd;
	r = -errno;
	if (r == -ENOENT)
		kh_err_set(err, "$.type: no module for backend type \"%s\": "
				"%s does not exist; install it into %s or set "
				"\"backend_dir\"", type, path, dir);
	else if (r == -ELOOP)
		kh_err_set(err, "module %s is a symbolic link; install the "
				"module file itself", path);
	else
		kh_err_set(err, "cannot open module %s: %s", path,
			   strerror(-r));
	return r;
}

/* Checks the descriptor that the module exports before trusting it. */
static int check_descriptor(const struct kh_backend_module *module,
			    const char *type, const char *path,
			    struct kh_err *err)
{
	/* abi_version is the first member in every ABI version. */
	if (module->abi_version != KH_BACKEND_ABI_VERSION) {
		kh_err_set(err, "module %s has backend ABI version %u, but "
				"this keyhole expects version %d; install the "
				"module built for this keyhole release",
			   path, (unsigned)module->abi_version,
			   KH_BACKEND_ABI_VERSION);
		return -EPROTO;
	}
	if (!module->type || strcmp(module->type, type) != 0) {
		kh_err_set(err, "module %s declares type \"%.64s\" but its file "
				"name is for type \"%s\"; rename the file or "
				"fix its descriptor",
			   path, module->type ? module->type : "(null)", type);
		return -EINVAL;
	}
	if (!module->configure || !module->list || !module->fetch ||
	    !module->test || !module->teardown) {
		kh_err_set(err, "module %s leaves a required function of its "
				"descriptor NULL (configure, list, fetch, test "
				"and teardown are required)", path);
		return -EINVAL;
	}
	return 0;
}

/*
 * Loads the checked file through its fd, so that the file dlopen maps is
 * the one whose owner and mode were checked, even if the path is
 * replaced in between.
 */
static int load_from_fd(struct module_entry *entry, const char *type,
			struct kh_err *err)
{
	char fd_path[64];

	(void)snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d",
		       entry->fd);
	entry->handle = dlopen(fd_path, RTLD_NOW | RTLD_LOCAL);
	if (!entry->handle) {
		const char *why = dlerror();

		kh_err_set(err, "cannot load module %s: %s", entry->path,
			   why ? why : "dlopen failed");
		return -ENOEXEC;
	}
	entry->module = dlsym(entry->handle, KH_BACKEND_SYMBOL);
	if (!entry->module) {
		kh_err_set(err, "module %s does not export the symbol \"%s\"; "
				"it is not a keyhole backend module",
			   entry->path, KH_BACKEND_SYMBOL);
		return -ENOEXEC;
	}
	return check_descriptor(entry->module, type, entry->path, err);
}

static struct module_entry *cache_find(const char *path)
{
	for (struct module_entry *e = cache; e; e = e->next) {
		if (strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
}

/* Caller holds cache_lock. Loads and checks path, then caches it. */
static int load_module_locked(const char *dir, const char *type,
			      const char *path,
			      const struct kh_backend_module **out,
			      struct kh_err *err)
{
	struct module_entry *entry = calloc(1, sizeof(*entry));
	int r;

	if (!entry)
		return -ENOMEM;
	(void)snprintf(entry->path, sizeof(entry->path), "%s", path);
	entry->fd = open_module_file(dir, type, path, err);
	if (entry->fd < 0) {
		r = entry->fd;
		goto out;
	}
	r = check_module_file(entry->fd, path, err);
	if (r == 0)
		r = load_from_fd(entry, type, err);
	if (r < 0)
		goto out;

	entry->next = cache;
	cache = entry;
	*out = entry->module;
	entry = NULL;
out:
	if (entry && entry->handle)
		(void)dlclose(entry->handle);
	if (entry && entry->fd >= 0)
		close(entry->fd);
	free(entry);
	return r;
}

/* Returns the module for type from dir, loading it on first use. */
static int find_module(const char *dir, const char *type,
		       const struct kh_backend_module **out,
		       struct kh_err *err)
{
	char path[PATH_MAX];
	const struct module_entry *entry;
	int n, r = 0;

	n = snprintf(path, sizeof(path), "%s/kh_backend_%s.so", dir, type);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		kh_err_set(err, "backend_dir %.128s is too long", dir);
		return -ENAMETOOLONG;
	}

	pthread_mutex_lock(&cache_lock);
	entry = cache_find(path);
	if (entry)
		*out = entry->module;
	else
		r = load_module_locked(dir, type, path, out, err);
	pthread_mutex_unlock(&cache_lock);
	return r;
}

static int check_open_args(const char *name, const json_t *conf,
			   struct kh_err *err)
{
	if (!kh_backend_name_is_valid(name)) {
		kh_err_set(err, "backend name \"%.64s\" is invalid; use 1 to %d "
				"characters from A-Z a-z 0-9 _ -",
			   name ? name : "(null)", KH_BACKEND_NAME_MAX);
		return -EINVAL;
	}
	if (!json_is_object(conf)) {
		kh_err_set(err, "backend %s: expected a JSON object", name);
		return -EINVAL;
	}
	return 0;
}

int kh_backend_open(const char *name, const json_t *conf,
		    const char *base_dir, const struct kh_backend_env *env,
		    struct kh_backend **out, struct kh_err *err)
{
	static const struct kh_backend_env no_env = { 0 };
	struct kh_backend *backend = NULL;
	const char *type = NULL, *dir;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	r = check_open_args(name, conf, err);
	if (r < 0)
		return r;
	if (!env)
		env = &no_env;
	dir = env->backend_dir ? env->backend_dir : KH_BACKEND_DIR;

	backend = calloc(1, sizeof(*backend));
	if (!backend) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(backend->name, name, strlen(name) + 1);
	r = read_type(conf, &type, err);
	if (r == 0)
		r = find_module(dir, type, &backend->module, err);
	if (r == 0)
		r = kh_backend_host_new(name, env, &backend->host);
	if (r < 0)
		goto out;

	r = backend->module->configure(backend->host, conf, base_dir,
				       &backend->state, err);
	if (r < 0)
		goto out;

	*out = backend;
	backend = NULL;
out:
	if (r < 0)
		kh_err_prefix(err, "backend %s", name);
	if (backend)
		kh_backend_host_free(backend->host);
	free(backend);
	return r;
}

void kh_backend_close(struct kh_backend *backend)
{
	if (!backend)
		return;
	if (backend->state)
		backend->module->teardown(backend->state);
	kh_backend_host_free(backend->host);
	free(backend);
}

int kh_backend_list(struct kh_backend *backend, json_t **names,
		    struct kh_err *err)
{
	int r;

	if (!backend || !names)
		return -EINVAL;
	*names = NULL;
	r = backend->module->list(backend->state, names, err);
	if (r == 0 && !json_is_array(*names)) {
		json_decref(*names);
		*names = NULL;
		kh_err_set(err, "backend %s: module %s listed no array",
			   backend->name, backend->module->type);
		return -EPROTO;
	}
	return r;
}

int kh_backend_test(struct kh_backend *backend, json_t **report,
		    struct kh_err *err)
{
	json_t *steps;
	int r;

	if (!backend || !report)
		return -EINVAL;
	*report = NULL;
	steps = json_array();
	if (!steps)
		return -ENOMEM;
	r = backend->module->test(backend->state, steps, err);
	*report = steps;
	return r;
}

bool kh_backend_is_static(const struct kh_backend *backend)
{
	return backend &&
	       (backend->module->flags & KH_BACKEND_STATIC_CREDENTIAL) != 0;
}

json_t *kh_backend_describe(struct kh_backend *backend)
{
	json_t *facts = NULL;

	if (backend && backend->module->describe)
		facts = backend->module->describe(backend->state);
	if (json_is_object(facts))
		return facts;
	json_decref(facts);
	return json_object();
}

void kh_backend_permit_ended(struct kh_backend *backend, const char *jti)
{
	if (backend && jti && backend->module->permit_ended)
		backend->module->permit_ended(backend->state, jti);
}

const char *kh_backend_type(const struct kh_backend *backend)
{
	return backend ? backend->module->type : NULL;
}
