"""AMLRequest and @rawhttp: give run() the raw HTTP request.

``@rawhttp`` marks run() so that its first parameter receives an
``AMLRequest`` with the Flask-like attributes score.py files use: method,
headers, args, form, files, data, get_data(), json, get_json(), path,
full_path, url, query_string, content_type.
"""

import email.parser
import email.policy
import io
import json
import urllib.parse

from .aml_response import Headers

_rawHttpRequested = False


def rawhttp(func):
    """Decorator for run(): pass the raw request object instead of a string."""
    global _rawHttpRequested
    _rawHttpRequested = True
    try:
        func._modelship_rawhttp = True
    except AttributeError:
        pass
    return func


class MultiDict(dict):
    """A dict of first values that also keeps every value per key (like werkzeug's)."""

    def __init__(self, pairs=()):
        super().__init__()
        self._lists = {}
        for k, v in pairs:
            self._lists.setdefault(k, []).append(v)
            if k not in self:
                dict.__setitem__(self, k, v)

    def getlist(self, key, type=None):
        values = self._lists.get(key, [])
        if type is None:
            return list(values)
        out = []
        for v in values:
            try:
                out.append(type(v))
            except (ValueError, TypeError):
                pass
        return out

    def get(self, key, default=None, type=None):
        if key not in self:
            return default
        value = dict.__getitem__(self, key)
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def lists(self):
        return list(self._lists.items())

    def to_dict(self, flat=True):
        return dict(self) if flat else {k: list(v) for k, v in self._lists.items()}


class FileStorage:
    """An uploaded file from a multipart/form-data body."""

    def __init__(self, data, filename, name, content_type):
        self.stream = io.BytesIO(data)
        self.filename = filename
        self.name = name
        self.content_type = content_type
        self.mimetype = (content_type or "").split(";", 1)[0].strip()

    def read(self, *args):
        return self.stream.read(*args)

    def seek(self, *args):
        return self.stream.seek(*args)

    def tell(self):
        return self.stream.tell()

    def readline(self, *args):
        return self.stream.readline(*args)

    def __iter__(self):
        return iter(self.stream)

    def save(self, dst):
        data = self.stream.getvalue()
        if hasattr(dst, "write"):
            dst.write(data)
        else:
            with open(dst, "wb") as f:
                f.write(data)

    def __repr__(self):
        return "<FileStorage: %r (%r)>" % (self.filename, self.content_type)


class _UserAgent(str):
    """Werkzeug's UserAgent, as far as scripts use it."""

    @property
    def string(self):
        return str(self)


class AMLRequest:
    """The HTTP request given to a @rawhttp run()."""

    def __init__(self, method="GET", path="/score", query_string=b"", headers=None, data=b""):
        self.method = method
        self.path = path
        self.query_string = query_string if isinstance(query_string, bytes) else str(query_string).encode("latin-1")
        self.headers = Headers(headers or [])
        self._data = data
        self._form = None
        self._files = None

    @property
    def args(self):
        return MultiDict(urllib.parse.parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True))

    @property
    def values(self):
        pairs = list(self.args.items())
        pairs += [(k, v) for k, vs in self.form.lists() for v in vs]
        return MultiDict(pairs)

    @property
    def data(self):
        return self._data

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        return self._data.decode("utf-8", "replace") if as_text else self._data

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @property
    def mimetype(self):
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    @property
    def content_length(self):
        return len(self._data)

    @property
    def is_json(self):
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def get_json(self, force=False, silent=False, cache=True):
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self._data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json()

    @property
    def host(self):
        return self.headers.get("Host", "localhost")

    @property
    def scheme(self):
        return self.headers.get("X-Forwarded-Proto", "http")

    @property
    def full_path(self):
        return self.path + "?" + self.query_string.decode("latin-1")

    @property
    def base_url(self):
        return "%s://%s%s" % (self.scheme, self.host, self.path)

    @property
    def url(self):
        qs = self.query_string.decode("latin-1")
        return self.base_url + ("?" + qs if qs else "")

    @property
    def url_root(self):
        return "%s://%s/" % (self.scheme, self.host)

    host_url = url_root

    @property
    def stream(self):
        """The body as a file-like object, as Flask's request.stream."""
        return io.BytesIO(self.get_data())

    @property
    def user_agent(self):
        """The User-Agent header; str() of it and .string give the text."""
        return _UserAgent(self.headers.get("User-Agent") or "")

    @property
    def remote_addr(self):
        fwd = self.headers.get("X-Forwarded-For")
        return fwd.split(",")[0].strip() if fwd else None

    @property
    def cookies(self):
        out = {}
        for part in (self.headers.get("Cookie") or "").split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v.strip()
        return out

    @property
    def environ(self):
        env = {"REQUEST_METHOD": self.method, "PATH_INFO": self.path, "QUERY_STRING": self.query_string.decode("latin-1")}
        for k, v in self.headers.items():
            env["HTTP_" + k.upper().replace("-", "_")] = v
        return env

    @property
    def form(self):
        self._parse_form()
        return self._form

    @property
    def files(self):
        self._parse_form()
        return self._files

    def _parse_form(self):
        if self._form is not None:
            return
        fields, files = [], []
        mt = self.mimetype
        if mt == "application/x-www-form-urlencoded":
            fields = urllib.parse.parse_qsl(self._data.decode("latin-1"), keep_blank_values=True)
        elif mt.startswith("multipart/"):
            raw = b"Content-Type: " + self.content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + self._data
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
            for part in msg.iter_parts() if msg.is_multipart() else []:
                name = part.get_param("name", header="content-disposition")
                filename = part.get_param("filename", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if filename is not None:
                    files.append((name, FileStorage(payload, filename, name, part.get("Content-Type"))))
                else:
                    charset = part.get_content_charset() or "utf-8"
                    fields.append((name, payload.decode(charset, "replace")))
        self._form = MultiDict(fields)
        self._files = MultiDict(files)

    def __repr__(self):
        return "<AMLRequest %s %s>" % (self.method, self.full_path)
