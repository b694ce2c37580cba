"""A PostgreSQL server of the tests' own, as a fleet shares one (test_fleet.py).

initdb and postgres run as the postgres user (they refuse root) in a directory of their own
under /var/tmp (the test's temporary directory may not be reachable by that user), in the
network namespace given, listening on the addresses given and on a socket directory. The
admin (postgres) comes in through the socket with peer-less trust; every other role comes in
over TCP with a password (scram-sha-256), as on a real shared server.
"""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

BINDIRS = ["/usr/lib/postgresql/15/bin"]


def bindir():
    for d in BINDIRS:
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    return None


class Server:
    def __init__(self, ns, listen, port):
        pw = pwd.getpwnam("postgres")
        self.base = tempfile.mkdtemp(prefix="fxb-fleet-pg-", dir="/var/tmp")
        os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        os.mkdir(self.sock)
        os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        self.port = port
        self.proc = None
        as_pg = ["setpriv", "--reuid", str(pw.pw_uid), "--regid", str(pw.pw_gid),
                 "--init-groups"]
        subprocess.run(as_pg + [os.path.join(bindir(), "initdb"), "-D", self.data, "-U",
                                "postgres", "--auth-local", "trust",
                                "--auth-host", "scram-sha-256", "-E", "UTF8"],
                       check=True, capture_output=True, env={"PATH": "/usr/bin:/bin",
                                                             "LC_ALL": "C.UTF-8"})
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all postgres trust\n"
                    "host all all 0.0.0.0/0 scram-sha-256\n"
                    "host all all ::/0 scram-sha-256\n")
        self.log = open(os.path.join(self.base, "postgres.log"), "w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns] + as_pg +
            [os.path.join(bindir(), "postgres"), "-D", self.data, "-p", str(port),
             "-k", self.sock, "-c", "listen_addresses=" + ",".join(listen),
             "-c", "max_connections=300", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=self.log, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin",
                                                            "LC_ALL": "C.UTF-8"})
        for _ in range(300):
            if self.psql("SELECT 1", check=False).returncode == 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("postgres did not start: " + self.logtail())
            time.sleep(0.1)
        else:
            raise RuntimeError("postgres did not answer: " + self.logtail())

    def admin_url(self):
        """What the shared brokers are given: the admin role through the socket directory."""
        return "postgresql://postgres@/postgres?host=%s&port=%d" % (self.sock, self.port)

    def psql(self, sql, check=True, db="postgres"):
        return subprocess.run([os.path.join(bindir(), "psql"), "-XAtq", "-h", self.sock,
                               "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                              capture_output=True, text=True, check=check)

    def query(self, sql):
        return [r for r in self.psql(sql).stdout.splitlines() if r]

    def logtail(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()[-2000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown: closes what is connected
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)
