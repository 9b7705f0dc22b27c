"""A Python Beaker 1.14 app for beaker-rs's interop tests, served by wsgiref.

Configured from the environment (BEAKER_TEST_SECRET, BEAKER_TEST_REDIS_URL,
BEAKER_TEST_TIMEOUT, BEAKER_TEST_SERIALIZER; with BEAKER_TEST_DB_URL and
BEAKER_TEST_DB_TABLE, ext:database on that SQLAlchemy URL and table instead of ext:redis;
with BEAKER_TEST_VALIDATE_KEY and BEAKER_TEST_ENCRYPT_KEY, cookie-only sessions encrypted
by the `cryptography` backend).
Prints its port on the first line.
  GET /get            -> the session dict as JSON (Beaker's reserved keys included)
  GET /set?k=K&v=JSON -> session[K] = json.loads(JSON), saved
  GET /login?user=U   -> session['user'] = U, saved
  GET /types          -> session['types'] = (1, b'\x00\xff', None), saved (pickle only)
"""
import json
import os
import sys
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from beaker.middleware import SessionMiddleware


def plain(v):
    """bytes as a list of numbers, tuples as lists: what JSON can show."""
    if isinstance(v, bytes):
        return list(v)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def app(environ, start_response):
    session = environ["beaker.session"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    path = environ["PATH_INFO"]
    if path == "/set":
        session[query["k"]] = json.loads(query["v"])
        session.save()
    elif path == "/login":
        session["user"] = query["user"]
        session.save()
    elif path == "/types":
        session["types"] = (1, b"\x00\xff", None)
        session.save()
    shown = {k: plain(v) for k, v in session.items()}
    shown["_types_of"] = {k: type(v).__name__ for k, v in session.items()}
    body = json.dumps(shown).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


config = {
    "session.type": "ext:redis",
    "session.url": os.environ.get("BEAKER_TEST_REDIS_URL"),
    "session.secret": os.environ["BEAKER_TEST_SECRET"],
    "session.data_serializer": os.environ.get("BEAKER_TEST_SERIALIZER", "json"),
    "session.httponly": True,
}
if os.environ.get("BEAKER_TEST_DB_URL"):
    config["session.type"] = "ext:database"
    config["session.url"] = os.environ["BEAKER_TEST_DB_URL"]
    config["session.table_name"] = os.environ["BEAKER_TEST_DB_TABLE"]
if os.environ.get("BEAKER_TEST_VALIDATE_KEY"):
    config["session.type"] = "cookie"
    del config["session.url"]
    config["session.validate_key"] = os.environ["BEAKER_TEST_VALIDATE_KEY"]
    config["session.encrypt_key"] = os.environ["BEAKER_TEST_ENCRYPT_KEY"]
    config["session.crypto_type"] = "cryptography"
if os.environ.get("BEAKER_TEST_TIMEOUT"):
    config["session.timeout"] = int(os.environ["BEAKER_TEST_TIMEOUT"])

server = make_server("127.0.0.1", 0, SessionMiddleware(app, config), handler_class=Quiet)
print(server.server_port, flush=True)
sys.stdout.close()
server.serve_forever()
