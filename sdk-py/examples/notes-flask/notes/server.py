"""server.py: serves the notes app: ``python -m notes.server`` with DATABASE_URL and PORT set.

Listens on 127.0.0.1:$PORT with werkzeug's threaded server until SIGTERM or SIGINT.
"""

import os
import signal
import sys
from types import FrameType
from typing import Optional

from werkzeug.serving import make_server

from . import create_app


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    port = os.environ.get("PORT")
    if not url or not port:
        print("notes.server: set DATABASE_URL and PORT", file=sys.stderr)
        return 2
    server = make_server("127.0.0.1", int(port), create_app(url), threaded=True)

    def stop(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"notes.server: listening on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
