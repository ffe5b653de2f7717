/* The backend module directory of the build under test. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_dir.h"

const char *kh_test_backend_dir(void)
{
	static char dir[PATH_MAX];
	const char *from_env = getenv("KH_TEST_BACKEND_DIR");
	char *slash;
	ssize_t n;

	if (from_env && from_env[0])
		return from_env;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 16);
	if (n <= 0)
		return "build/backends";
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(dir, '/');
	if (slash)
		(void)snprintf(slash, sizeof(dir) - (size_t)(slash - dir),
			       "/backends");
	return dir;
}

const struct kh_backend_env *kh_test_backend_env(void)
{
	static struct kh_backend_env env;

	env.backend_dir = kh_test_backend_dir();
	return &env;
}
