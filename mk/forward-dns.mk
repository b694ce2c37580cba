# ---- forwarding: the upstream's host name is resolved off the loop ------------------------
# test_forward starts a broker under an LD_PRELOAD shim that holds getaddrinfo() of one name
# (tests/servers/slow_getaddrinfo.c) and checks the broker keeps answering meanwhile.
TEST_SERVERS += $(B)/tests/servers/slow_getaddrinfo.so
# The rules that named $(TEST_SERVERS) before this file was read did not see it added.
integration forward-test: $(B)/tests/servers/slow_getaddrinfo.so

$(B)/tests/servers/slow_getaddrinfo.so: tests/servers/slow_getaddrinfo.c | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -shared -o $@ $< -ldl
