/* A shared object that exports no kh_backend_module descriptor. */
int kh_backend_other_symbol(void);

int kh_backend_other_symbol(void)
{
	return 0;
}
