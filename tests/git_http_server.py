"""A git smart-HTTP server that asks for Basic credentials, for tests of private repositories.

    GIT_HTTP_TOKEN=<password> python3 git_http_server.py ROOT USER PORT

Serves every repository under ROOT (http://127.0.0.1:PORT/<name>.git) through git's own
git-http-backend, to clients that send USER and the password; others get 401. The password
comes from the environment, so it is on no command line. Runs on the test hosts' Python 3.11
and the controller's, standard library only.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def backend() -> str:
    found = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True)
    return os.path.join(found.stdout.strip(), "git-http-backend")


def main(root: str, user: str, port: int) -> None:
    want = "Basic " + base64.b64encode(f"{user}:{os.environ['GIT_HTTP_TOKEN']}".encode()).decode()
    program = backend()

    class Handler(BaseHTTPRequestHandler):
        def serve(self) -> None:
            if self.headers.get("Authorization") != want:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "REMOTE_USER": user,
                "REMOTE_ADDR": self.client_address[0],
            }
            out = subprocess.run([program], input=body, env=env, capture_output=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode("latin-1").split("\r\n"):
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = serve

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
