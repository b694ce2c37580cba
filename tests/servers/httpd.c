/* httpd.c: a small HTTP server the integration tests and benchmarks lease as a server fixture.
 *
 * usage: httpd [--port N] [--host ADDR] [options]
 *
 * The port comes from --port, else $PORT; the address from --host (numeric IPv4 or IPv6,
 * default 127.0.0.1); with socket activation (LISTEN_FDS=1 and
 * LISTEN_PID equal to its own pid) it serves the listening socket it was handed as fd 3
 * instead, and says so. It prints "listening on ADDR:PORT" once it accepts
 * connections. Routes: GET /healthz (200 "ok", or 503 with --unhealthy), GET /pid (its
 * pid), GET /env/NAME (the variable's value, 404 when unset), GET /fds (how many
 * descriptors above 2 it has open), anything else 200 "hello". Options that misbehave on
 * purpose:
 *   --crash-on-start CODE  print two lines (stdout, stderr) and exit CODE before listening
 *   --ignore-sigterm       ignore SIGTERM (only SIGKILL stops it)
 *   --daemon-child         start a grandchild that leaves the process group (double fork,
 *                          setsid, stdio to /dev/null) and sleeps; prints "daemon pid N"
 *   --ready-twice MS       print "ready to accept connections", wait MS, print it again,
 *                          then listen (PostgreSQL prints its ready line twice at init)
 *   --slow-start MS        wait MS before listening
 *   --print N              print N numbered lines on stdout before listening
 * It exits 0 on SIGTERM, printing "stopping on SIGTERM".
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !stopping)
		;
}

static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (atoi(de->d_name) > 2)
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static void
daemon_child(void)
{
	pid_t pid = fork();

	if (pid != 0)
		return; /* the server goes on; the intermediate child is reaped below */
	setsid();
	if ((pid = fork()) != 0)
		_exit(0);
	printf("daemon pid %ld\n", (long)getpid());
	fflush(stdout);
	{
		int fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	signal(SIGTERM, SIG_DFL);
	for (;;)
		pause();
}

static void
reply(int c, int status, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof head, "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status,
	    status == 200 ? "OK" : status == 404 ? "Not Found" : "Service Unavailable", strlen(body));

	if (write(c, head, (size_t)n) != n || write(c, body, strlen(body)) != (ssize_t)strlen(body))
		return;
}

static void
serve(int c, int unhealthy)
{
	char req[4096], path[1024], body[1024];
	size_t len = 0;
	ssize_t n;
	struct timeval tv = { 2, 0 };

	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (len < sizeof req - 1 && (n = read(c, req + len, sizeof req - 1 - len)) > 0) {
		len += (size_t)n;
		req[len] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	req[len] = '\0';
	if (sscanf(req, "%*s %1023s", path) != 1) {
		reply(c, 404, "bad request\n");
		return;
	}
	if (!strcmp(path, "/healthz")) {
		reply(c, unhealthy ? 503 : 200, unhealthy ? "unhealthy\n" : "ok\n");
	} else if (!strcmp(path, "/pid")) {
		snprintf(body, sizeof body, "%ld\n", (long)getpid());
		reply(c, 200, body);
	} else if (!strcmp(path, "/fds")) {
		snprintf(body, sizeof body, "%d\n", open_fds());
		reply(c, 200, body);
	} else if (!strncmp(path, "/env/", 5)) {
		const char *v = getenv(path + 5);
		snprintf(body, sizeof body, "%s\n", v ? v : "");
		reply(c, v ? 200 : 404, body);
	} else {
		reply(c, 200, "hello\n");
	}
}

int
main(int argc, char **argv)
{
	long port = getenv("PORT") ? atol(getenv("PORT")) : 0, ready_twice = -1, slow = 0;
	int crash = -1, ignore_term = 0, daemon = 0, unhealthy = 0, lines = 0, fd = -1;
	const char *host = "127.0.0.1";
	struct sigaction sa;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--port") && next)
			port = atol(argv[++i]);
		else if (!strcmp(a, "--host") && next)
			host = argv[++i];
		else if (!strcmp(a, "--crash-on-start") && next)
			crash = atoi(argv[++i]);
		else if (!strcmp(a, "--ignore-sigterm"))
			ignore_term = 1;
		else if (!strcmp(a, "--daemon-child"))
			daemon = 1;
		else if (!strcmp(a, "--ready-twice") && next)
			ready_twice = atol(argv[++i]);
		else if (!strcmp(a, "--slow-start") && next)
			slow = atol(argv[++i]);
		else if (!strcmp(a, "--print") && next)
			lines = atoi(argv[++i]);
		else if (!strcmp(a, "--unhealthy"))
			unhealthy = 1;
		else {
			fprintf(stderr, "httpd: unknown argument %s\n", a);
			return 2;
		}
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = ignore_term ? SIG_IGN : on_term;
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_IGN); /* the daemon's intermediate child reaps itself */

	printf("httpd %ld starting\n", (long)getpid());
	for (int i = 1; i <= lines; i++)
		printf("line %d\n", i);
	if (crash >= 0) {
		printf("httpd: cannot start: configuration missing\n");
		fprintf(stderr, "httpd: fatal: giving up with status %d\n", crash);
		return crash;
	}
	if (daemon)
		daemon_child();
	if (slow > 0)
		sleep_ms(slow);
	if (ready_twice >= 0) {
		printf("database system is ready to accept connections\n");
		sleep_ms(ready_twice);
		printf("database system is ready to accept connections\n");
	}

	if (getenv("LISTEN_FDS") && atoi(getenv("LISTEN_FDS")) >= 1 && getenv("LISTEN_PID") &&
	    atol(getenv("LISTEN_PID")) == (long)getpid()) {
		struct sockaddr_storage a;
		socklen_t alen = sizeof a;

		fd = 3;
		if (getsockname(fd, (struct sockaddr *)&a, &alen) == -1) {
			perror("httpd: fd 3");
			return 1;
		}
		port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
		    : ((struct sockaddr_in *)&a)->sin_port);
		printf("socket activation: serving fd 3 (%s)\n",
		    getenv("LISTEN_FDNAMES") ? getenv("LISTEN_FDNAMES") : "unnamed");
	} else {
		struct sockaddr_in a4;
		struct sockaddr_in6 a6;
		int one = 1, v6 = strchr(host, ':') != NULL;

		if (port <= 0 || port > 65535) {
			fprintf(stderr, "httpd: no port (--port N or PORT)\n");
			return 2;
		}
		memset(&a4, 0, sizeof a4);
		memset(&a6, 0, sizeof a6);
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)port);
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)port);
		if (inet_pton(v6 ? AF_INET6 : AF_INET, host, v6 ? (void *)&a6.sin6_addr
		    : (void *)&a4.sin_addr) != 1) {
			fprintf(stderr, "httpd: --host: not a numeric address: %s\n", host);
			return 2;
		}
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
		    v6 ? sizeof a6 : sizeof a4) == -1 || listen(fd, 128) == -1) {
			fprintf(stderr, "httpd: %s:%ld: %s\n", host, port, strerror(errno));
			return 1;
		}
	}
	printf("listening on %s:%ld\n", host, port);
	while (!stopping) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c == -1)
			continue;
		serve(c, unhealthy);
		close(c);
	}
	printf("stopping on SIGTERM\n");
	return 0;
}
